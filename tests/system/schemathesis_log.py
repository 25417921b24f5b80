"""A schemathesis check for tests/system/test_api_openapi.py (loaded through
SCHEMATHESIS_HOOKS): schemathesis' five checks, in its order, with every
failure written as a JSON line to $FT_ST_FAILURES before it is raised.

Schemathesis' own reports keep the last execution of a case: a failure that
Hypothesis could not reproduce on its replay (FlakyFailure, "No issues found"
with exit 1) leaves no trace in them. This file keeps it."""
import json
import os

import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance,
                                               response_headers_conformance,
                                               response_schema_conformance,
                                               status_code_conformance)

CHECKS = (not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance)


def _text(b, n=600):
    if b is None:
        return ""
    if isinstance(b, bytes):
        b = b.decode("utf-8", "replace")
    return str(b)[:n]


@schemathesis.check
def logged_conformance(ctx, response, case):
    for check in CHECKS:
        try:
            check(ctx, response, case)
        except Exception as e:
            req = response.request
            with open(os.environ["FT_ST_FAILURES"], "a", encoding="utf-8") as f:
                f.write(json.dumps({
                    "check": check.__name__, "operation": case.operation.label,
                    "error": _text(f"{type(e).__name__}: {e}", 1500),
                    "method": req.method, "url": req.url, "status": response.status_code,
                    "request_headers": {k: v for k, v in req.headers.items()
                                        if k.lower() != "authorization"},
                    "request_body": _text(req.body), "response_headers": response.headers,
                    "response": _text(response.content)}, ensure_ascii=False) + "\n")
            raise
