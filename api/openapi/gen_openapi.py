#!/usr/bin/env python3
"""Write docs/openapi.yaml (OpenAPI 3.1) from the tables below.

The output is JSON, which is valid YAML 1.2, after a comment header: ft-api
embeds it at build time (api/embed_openapi.cmake) and serves it at
/v1/openapi.json, and tests/system/test_api_openapi.py checks that the file
is what this script writes. Run: python3 api/openapi/gen_openapi.py
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "openapi.yaml"


def ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(t):
    return {"type": [t, "null"]}


S = "string"
I = "integer"
N = "number"
B = "boolean"


def obj(props, required=None, extra=True):
    o = {"type": "object", "properties": props,
         "required": list(props) if required is None else required}
    if not extra:
        o["additionalProperties"] = False
    return o


def const(v):
    return {"type": "string", "const": v}


def list_of(name):
    return obj({
        "object": const("list"),
        "data": {"type": "array", "items": ref(name)},
        "has_more": {"type": B},
        "first_id": nullable(S),
        "last_id": nullable(S),
    })


auto_or = lambda t, **kw: {"oneOf": [{"type": "string", "const": "auto"}, dict(type=t, **kw)]}
HP_PUBLIC = obj({
    "n_epochs": auto_or(I, minimum=1, maximum=50),
    "batch_size": auto_or(I, minimum=1, maximum=256),
    "learning_rate_multiplier": auto_or(N, exclusiveMinimum=0, maximum=100),
}, required=[])
# Ours beside OpenAI's: passed to the trainer's job file (docs/trainer.md).
HP_OURS = {
    "learning_rate": {"type": N, "minimum": 0, "maximum": 10},
    "lr_scheduler_type": {"type": S, "enum": ["linear", "cosine", "constant",
                                              "constant_with_warmup"]},
    "warmup_steps": {"type": I, "minimum": 0, "maximum": 1000000000},
    "warmup_ratio": {"type": N, "minimum": 0, "maximum": 1},
    "weight_decay": {"type": N, "minimum": 0, "maximum": 10},
    "max_grad_norm": {"type": N, "minimum": 0, "maximum": 1000000000},
    "gradient_accumulation_steps": {"type": I, "minimum": 1, "maximum": 4096},
    "max_steps": {"type": I, "minimum": 1, "maximum": 1000000000},
    "max_seq_length": {"type": I, "minimum": 2, "maximum": 1 << 20},
    "packing": {"type": B},
    "shuffle": {"type": B},
    "gradient_checkpointing": {"oneOf": [{"type": B},
                                         {"type": I, "minimum": 0, "maximum": 1 << 20}]},
    "eval_steps": {"type": I, "minimum": 0, "maximum": 1000000000},
    "eval_on_start": {"type": B},
    "early_stopping_patience": {"type": I, "minimum": 0, "maximum": 1000000},
    "save_steps": {"type": I, "minimum": 0, "maximum": 1000000000},
}
HP_IN = {"type": "object", "additionalProperties": False,
         "properties": dict(HP_PUBLIC["properties"], **HP_OURS)}
HP_DPO_IN = {"type": "object", "additionalProperties": False, "properties": dict(
    {k: v for k, v in HP_IN["properties"].items() if k != "packing"}, beta=auto_or(N, exclusiveMinimum=0, maximum=2),
    label_smoothing={"type": N, "minimum": 0, "maximum": 0.5})}

schemas = {
    "Error": obj({"error": obj({
        "type": {"type": S}, "code": {"type": S}, "message": {"type": S},
        "param": nullable(S), "line": nullable(I)})}),
    "File": obj({
        "id": {"type": S}, "object": const("file"), "bytes": {"type": I},
        "created_at": {"type": I}, "filename": {"type": S},
        "purpose": {"type": S, "enum": ["fine-tune", "fine-tune-results"]},
        "status": {"type": S, "enum": ["uploaded", "processed", "error"]},
        "status_details": nullable(S), "expires_at": nullable(I),
        "sha256": {"type": S, "pattern": "^[0-9a-f]{64}$"}}),
    "FileList": list_of("File"),
    "Deleted": obj({"id": {"type": S}, "object": {"type": S}, "deleted": {"type": B}}),
    "FileUpload": obj({
        "purpose": {"type": S, "enum": ["fine-tune"]},
        "file": {"type": S, "format": "binary"}}, extra=False),
    "JobError": {"type": ["object", "null"], "properties": {
        "code": {"type": S}, "message": {"type": S}, "param": nullable(S),
        "line": nullable(I), "report": {"type": "object"}}},
    "Job": obj({
        "id": {"type": S}, "object": const("fine_tuning.job"), "created_at": {"type": I},
        "error": ref("JobError"), "fine_tuned_model": nullable(S), "finished_at": nullable(I),
        "hyperparameters": HP_PUBLIC, "method": obj({"type": {"type": S, "enum": ["supervised", "dpo"]}},
                                                    required=["type"]),
        "model": {"type": S}, "organization_id": {"type": S},
        "result_files": {"type": "array", "items": {"type": S}}, "seed": {"type": I},
        "status": {"type": S, "enum": ["validating_files", "queued", "running", "succeeded",
                                        "failed", "cancelled"]},
        "trained_tokens": nullable(I), "training_file": {"type": S}, "validation_file": nullable(S),
        "estimated_finish": nullable(I), "integrations": {"type": "array"},
        "metadata": {"type": "object", "additionalProperties": {"type": S}},
        "user_provided_suffix": nullable(S),
        "state": {"type": S, "enum": ["validating_files", "queued", "dispatched", "running",
                                       "cancelling", "succeeded", "failed", "cancelled"]},
        "adapter": {"type": S, "enum": ["none", "lora", "qlora"]},
        "lora": {"type": ["object", "null"]}, "gpus": {"type": I}, "priority": {"type": I},
        "attempt": {"type": I}, "max_attempts": {"type": I}, "worker": nullable(S),
        "latest_metrics": {"type": ["object", "null"]}}),
    "JobList": list_of("Job"),
    "JobCreate": obj({
        "model": {"type": S, "minLength": 1},
        "training_file": {"type": S, "minLength": 1},
        "validation_file": nullable(S),
        "method": {"type": "object", "additionalProperties": False, "required": ["type"],
                   "properties": {
                       "type": {"type": S, "enum": ["supervised", "dpo"]},
                       "supervised": {"type": "object", "additionalProperties": False,
                                      "properties": {"hyperparameters": HP_IN}},
                       "dpo": {"type": "object", "additionalProperties": False,
                               "properties": {"hyperparameters": HP_DPO_IN}}}},
        "hyperparameters": HP_IN,
        "suffix": {"type": ["string", "null"], "maxLength": 64},
        "seed": {"type": ["integer", "null"], "minimum": 0, "maximum": 2147483647},
        "metadata": {"type": ["object", "null"], "maxProperties": 16,
                     "additionalProperties": {"type": S, "maxLength": 512}},
        "integrations": {"type": ["array", "null"], "maxItems": 0},
        "adapter": {"type": S, "enum": ["none", "lora", "qlora"]},
        "lora": {"type": ["object", "null"], "additionalProperties": False, "properties": {
            "r": {"type": I, "minimum": 1, "maximum": 1024},
            "alpha": {"type": N, "exclusiveMinimum": 0, "maximum": 65536},
            "dropout": {"type": N, "minimum": 0, "maximum": 0.95},
            "target_modules": {"type": "array", "items": {"type": S}, "minItems": 1, "maxItems": 32}}},
        "gpus": {"type": I, "minimum": 0, "maximum": 64},
        "priority": {"type": I, "minimum": -100, "maximum": 100},
    }, required=["model", "training_file"], extra=False),
    "Event": obj({
        "id": {"type": S}, "object": const("fine_tuning.job.event"), "created_at": {"type": I},
        "level": {"type": S, "enum": ["info", "warn", "error"]}, "message": {"type": S},
        "data": {}, "type": {"type": S, "enum": ["message", "metrics", "status"]}}),
    "EventList": list_of("Event"),
    "Checkpoint": obj({
        "id": {"type": S}, "object": const("fine_tuning.job.checkpoint"), "created_at": {"type": I},
        "fine_tuned_model_checkpoint": {"type": S}, "fine_tuning_job_id": {"type": S},
        "metrics": {"type": "object"}, "step_number": {"type": I}}),
    "CheckpointList": list_of("Checkpoint"),
    "Dataset": obj({
        "id": {"type": S}, "object": const("dataset"), "file_id": {"type": S}, "name": {"type": S},
        "format": nullable(S), "status": {"type": S, "enum": ["validating", "valid", "invalid"]},
        "preview": {"type": "array", "items": {"type": S}},
        "report": {"type": ["object", "null"]}, "stats": {"type": ["object", "null"]},
        "created_at": {"type": I}, "validated_at": nullable(I)}),
    "DatasetList": list_of("Dataset"),
    "DatasetCreate": obj({"file_id": {"type": S, "minLength": 1},
                          "name": {"type": ["string", "null"], "minLength": 1, "maxLength": 256}},
                         required=["file_id"], extra=False),
    "Model": obj({
        "id": {"type": S}, "object": const("model"), "created": {"type": I},
        "owned_by": {"type": S}, "model_id": {"type": S}, "architecture": {"type": S},
        "parameter_count": {"type": I}, "chat_template": nullable(S)}),
    "ModelList": list_of("Model"),
    "ModelCreate": obj({"name": {"type": S, "minLength": 1, "maxLength": 256},
                        "path": {"type": S, "minLength": 1}}, extra=False),
    "Team": obj({
        "id": {"type": S}, "object": const("team"), "name": {"type": S}, "quota_gpus": {"type": I},
        "max_concurrent_jobs": {"type": I}, "fair_share_weight": {"type": N},
        "created_at": {"type": I}}),
    "TeamList": list_of("Team"),
    "ApiKey": obj({
        "id": {"type": S}, "object": const("api_key"), "team_id": {"type": S}, "name": {"type": S},
        "prefix": {"type": S}, "role": {"type": S, "enum": ["viewer", "member", "admin"]},
        "rate_limit_per_min": {"type": I}, "created_at": {"type": I},
        "last_used_at": nullable(I), "expires_at": nullable(I), "revoked_at": nullable(I)}),
    "ApiKeyCreated": {"allOf": [ref("ApiKey"), obj({"key": {"type": S, "pattern": "^ftk-"}})]},
    "ApiKeyList": list_of("ApiKey"),
    "ApiKeyCreate": obj({
        "name": {"type": ["string", "null"], "maxLength": 128},
        "role": {"type": ["string", "null"], "enum": ["viewer", "member", "admin", None]},
        "rate_limit_per_min": {"type": ["integer", "null"], "minimum": 1, "maximum": 1000000},
        "expires_at": {"type": ["integer", "null"], "minimum": 1, "maximum": 253402300799}},
        required=[], extra=False),
    "Webhook": obj({
        "id": {"type": S}, "object": const("webhook"), "url": {"type": S},
        "events": {"type": "array", "items": {"type": S}}, "enabled": {"type": B},
        "disabled_reason": nullable(S), "created_at": {"type": I}, "rotating": {"type": B}}),
    "WebhookWithSecret": {"allOf": [ref("Webhook"), obj({"secret": {"type": S, "pattern": "^whsec_"}})]},
    "WebhookList": list_of("Webhook"),
    "WebhookCreate": obj({
        "url": {"type": S, "minLength": 1, "maxLength": 2048},
        "events": {"type": "array", "minItems": 1, "maxItems": 16,
                   "items": {"type": S, "enum": ["fine_tuning.job.succeeded", "fine_tuning.job.failed",
                                                 "fine_tuning.job.cancelled", "model_version.created"]}}},
        extra=False),
    "WebhookDelivery": obj({
        "id": {"type": S}, "object": const("webhook.delivery"), "webhook_id": {"type": S},
        "event_type": {"type": S},
        "status": {"type": S, "enum": ["pending", "delivering", "succeeded", "failed", "abandoned"]},
        "attempts": {"type": I}, "last_status_code": nullable(I), "last_error": nullable(S),
        "created_at": {"type": I}, "next_attempt_at": nullable(I), "delivered_at": nullable(I),
        "payload": {}}),
    "WebhookDeliveryList": list_of("WebhookDelivery"),
}

ERR = {"description": "error: 4xx is the caller's, 5xx the server's",
       "content": {"application/json": {"schema": ref("Error")}}}


def ok(schema, desc="OK", ctype="application/json"):
    return {"200": {"description": desc, "content": {ctype: {"schema": schema}}}, "default": ERR}


def path_param(name, desc, prefix=None):
    schema = {"type": S}
    if prefix:
        schema["pattern"] = f"^{prefix}-[0-9A-Za-z]{{24}}$"
    else:
        schema["pattern"] = "^[A-Za-z0-9._-]{1,64}$"
    return {"name": name, "in": "path", "required": True, "description": desc, "schema": schema}


PAGE = [{"name": "limit", "in": "query", "required": False,
         "schema": {"type": I, "minimum": 1, "maximum": 100, "default": 20}},
        {"name": "after", "in": "query", "required": False,
         "description": "id of the last object of the previous page", "schema": {"type": S}}]
IDEM = {"name": "Idempotency-Key", "in": "header", "required": False,
        "description": "replays the first response to a POST with the same key and body",
        "schema": {"type": S, "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"}}


def body(name, ctype="application/json", required=True):
    return {"required": required, "content": {ctype: {"schema": ref(name)}}}


def op(op_id, summary, responses, params=None, request=None, tags=None, security=None):
    o = {"operationId": op_id, "summary": summary, "responses": responses}
    if params:
        o["parameters"] = params
    if request:
        o["requestBody"] = request
    if tags:
        o["tags"] = tags
    if security is not None:
        o["security"] = security
    return o


JOB_ID = path_param("id", "fine-tuning job id", "ftjob")
WH_ID = path_param("id", "webhook id", "wh")
paths = {
    "/v1/openapi.json": {"get": op("getOpenapi", "this document", ok({"type": "object"}),
                                   security=[], tags=["meta"])},
    "/v1/files": {
        "post": op("createFile", "upload a JSONL file (multipart, streamed, size-capped)",
                   ok(ref("File")), [IDEM], body("FileUpload", "multipart/form-data"), ["files"]),
        "get": op("listFiles", "list the team's files", ok(ref("FileList")),
                  PAGE + [{"name": "purpose", "in": "query", "required": False,
                           "schema": {"type": S, "enum": ["fine-tune", "fine-tune-results"]}}],
                  tags=["files"]),
    },
    "/v1/files/{id}": {
        "get": op("getFile", "one file", ok(ref("File")), [path_param("id", "file id", "file")], tags=["files"]),
        "delete": op("deleteFile", "delete a file (jobs keep their lineage)", ok(ref("Deleted")),
                     [path_param("id", "file id", "file")], tags=["files"]),
    },
    "/v1/files/{id}/content": {
        "get": op("getFileContent", "the file's bytes",
                  ok({"type": S, "format": "binary"}, ctype="application/octet-stream"),
                  [path_param("id", "file id", "file")], tags=["files"]),
    },
    "/v1/fine_tuning/jobs": {
        "post": op("createJob", "create a fine-tuning job", ok(ref("Job")), [IDEM], body("JobCreate"),
                   ["jobs"]),
        "get": op("listJobs", "list jobs, newest first", ok(ref("JobList")), PAGE, tags=["jobs"]),
    },
    "/v1/fine_tuning/jobs/{id}": {
        "get": op("getJob", "one job", ok(ref("Job")), [JOB_ID], tags=["jobs"]),
    },
    "/v1/fine_tuning/jobs/{id}/cancel": {
        "post": op("cancelJob", "cancel a job", ok(ref("Job")), [JOB_ID, IDEM], tags=["jobs"]),
    },
    "/v1/fine_tuning/jobs/{id}/events": {
        "get": op("listJobEvents", "job events, newest first", ok(ref("EventList")), [JOB_ID] + PAGE,
                  tags=["jobs"]),
    },
    "/v1/fine_tuning/jobs/{id}/checkpoints": {
        "get": op("listJobCheckpoints", "job checkpoints, newest first", ok(ref("CheckpointList")),
                  [JOB_ID] + PAGE, tags=["jobs"]),
    },
    "/v1/datasets": {
        "post": op("createDataset", "validate an uploaded file as a dataset", ok(ref("Dataset")), [IDEM],
                   body("DatasetCreate"), ["datasets"]),
        "get": op("listDatasets", "list datasets", ok(ref("DatasetList")), PAGE, tags=["datasets"]),
    },
    "/v1/datasets/{id}": {
        "get": op("getDataset", "a dataset with its report, statistics and preview", ok(ref("Dataset")),
                  [path_param("id", "dataset id", "ds")], tags=["datasets"]),
    },
    "/v1/models": {
        "post": op("createModel", "register a base model from a model folder (admin)", ok(ref("Model")),
                   [IDEM], body("ModelCreate"), ["models"]),
        "get": op("listModels", "base models visible to the team", ok(ref("ModelList")), PAGE,
                  tags=["models"]),
    },
    "/v1/models/{model}": {
        "get": op("getModel", "one base model, by name or id", ok(ref("Model")),
                  [path_param("model", "model name or id")], tags=["models"]),
    },
    "/v1/teams": {
        "get": op("listTeams", "the caller's team", ok(ref("TeamList")), PAGE, tags=["teams"]),
    },
    "/v1/teams/{id}": {
        "get": op("getTeam", "one team", ok(ref("Team")), [path_param("id", "team id", "team")], tags=["teams"]),
    },
    "/v1/keys": {
        "post": op("createKey", "create an API key, shown once (admin)", ok(ref("ApiKeyCreated")), [IDEM],
                   body("ApiKeyCreate"), ["keys"]),
        "get": op("listKeys", "the team's keys (admin)", ok(ref("ApiKeyList")), PAGE, tags=["keys"]),
    },
    "/v1/keys/{id}": {
        "get": op("getKey", "one key (admin)", ok(ref("ApiKey")), [path_param("id", "key id", "key")],
                  tags=["keys"]),
        "delete": op("revokeKey", "revoke a key (admin)", ok(ref("Deleted")), [path_param("id", "key id", "key")],
                     tags=["keys"]),
    },
    "/v1/webhooks": {
        "post": op("createWebhook", "add a webhook endpoint; its secret is shown once (admin)",
                   ok(ref("WebhookWithSecret")), [IDEM], body("WebhookCreate"), ["webhooks"]),
        "get": op("listWebhooks", "the team's webhook endpoints", ok(ref("WebhookList")), PAGE,
                  tags=["webhooks"]),
    },
    "/v1/webhooks/{id}": {
        "get": op("getWebhook", "one webhook endpoint", ok(ref("Webhook")), [WH_ID], tags=["webhooks"]),
        "delete": op("deleteWebhook", "delete a webhook endpoint (admin)", ok(ref("Deleted")), [WH_ID],
                     tags=["webhooks"]),
    },
    "/v1/webhooks/{id}/rotate_secret": {
        "post": op("rotateWebhookSecret", "new secret, shown once; the old one signs too for 24 h (admin)",
                   ok(ref("WebhookWithSecret")), [WH_ID, IDEM], tags=["webhooks"]),
    },
    "/v1/webhooks/{id}/deliveries": {
        "get": op("listWebhookDeliveries", "the endpoint's delivery log, newest first",
                  ok(ref("WebhookDeliveryList")), [WH_ID] + PAGE, tags=["webhooks"]),
    },
    "/v1/webhooks/{id}/deliveries/{did}/redeliver": {
        "post": op("redeliverWebhook", "send a delivery again now (admin)", ok(ref("WebhookDelivery")),
                   [WH_ID, path_param("did", "delivery id", "whd"), IDEM], tags=["webhooks"]),
    },
}

doc = {
    "openapi": "3.1.0",
    "info": {"title": "ftplat API", "version": "0.1.0",
             "description": "OpenAI-compatible files and fine-tuning jobs, plus datasets, base models, "
                            "teams, keys and webhooks. See docs/api.md."},
    "servers": [{"url": "/"}],
    "security": [{"bearer": []}],
    "paths": paths,
    "components": {"schemas": schemas,
                   "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                  "description": "ftk-... API key"}}},
}

HEADER = ("# docs/openapi.yaml - the ftplat REST API (OpenAPI 3.1).\n"
          "# Generated by api/openapi/gen_openapi.py; edit that and rerun it.\n"
          "# JSON syntax (valid YAML 1.2) so that ft-api can embed and serve it as-is.\n")


def render():
    return HEADER + json.dumps(doc, indent=1) + "\n"


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--check":
        sys.exit(0 if OUT.read_text() == render() else 1)
    OUT.write_text(render())
