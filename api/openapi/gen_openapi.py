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


# an LLM judge, as experiments and evaluations take it (api/src/experiments.c api_judge_parse)
JUDGE_IN = {"type": ["object", "null"], "additionalProperties": False,
            "required": ["url", "model"], "properties": {
                "url": {"type": "string", "minLength": 1, "maxLength": 2048},
                "model": {"type": "string", "minLength": 1, "maxLength": 256},
                "prompt": {"type": ["string", "null"], "minLength": 1},
                "max_tokens": {"type": ["integer", "null"], "minimum": 16, "maximum": 4096},
                "api_key": {"type": ["string", "null"], "minLength": 1, "maxLength": 1024,
                            "description": "the judge's bearer token; stored sealed, never returned"}}}


def list_of(name):
    return obj({
        "object": const("list"),
        "data": {"type": "array", "items": ref(name)},
        "has_more": {"type": B},
        "first_id": nullable(S),
        "last_id": nullable(S),
    })


auto_or = lambda t, **kw: {"oneOf": [{"type": "string", "const": "auto"}, dict(type=t, **kw)]}


def hparams():
    """The hyperparameter table of trainer/train/hparams.def (the one the
    trainer and ft-api check with): name -> (schema, flags)."""
    import re
    text = (ROOT / "trainer" / "train" / "hparams.def").read_text()
    rows = re.findall(r'FT_HP\("(\w+)", (\w+), ([-\w.]+), ([-\w.]+), ([^,]+), (\w+), "([^"]*)"',
                      text)
    out = {}
    # the CHOICE rows' value lists, as hparams.c declares them
    src = (ROOT / "trainer" / "train" / "hparams.c").read_text()
    choices = {m[0]: re.findall(r'"([^"]*)"', m[1])
               for m in re.findall(r'static const char \*const (\w+)\[\] = \{([^}]*)\};', src)}
    for name, kind, lo, hi, flags, ch, dflt in rows:
        lo, hi = float(lo), float(hi)
        num = lambda x: int(x) if x == int(x) else x
        if kind in ("INT", "NUM"):
            t = I if kind == "INT" else N
            s = dict(type=t, minimum=num(lo), maximum=num(hi))
        elif kind == "BOOL":
            s = {"type": B}
        elif kind == "BOOL_OR_INT":
            s = {"oneOf": [{"type": B}, {"type": I, "minimum": num(lo), "maximum": num(hi)}]}
        else:
            s = {"type": S, "enum": choices[ch]}
        if "FT_HP_AUTO" in flags:
            s = {"oneOf": [{"type": "string", "const": "auto"}, s]}
        # the default when the field is absent (or "auto"), where it is one value
        # (not "2e-4 (LoRA), 2e-5 (full)"): the console's wizard shows it
        d = {"true": True, "false": False}.get(dflt, dflt)
        if isinstance(d, str):
            try:
                d = num(float(d)) if kind in ("INT", "NUM") else (d if kind == "CHOICE" else None)
            except ValueError:
                d = None
        if d is not None and "FT_HP_ALIAS" not in flags:
            s = dict(s, default=d)
        out[name] = (s, flags)
    return out


HP = {k: v for k, v in hparams().items() if "FT_HP_ALIAS" not in v[1] or k == "epochs"}
HP_PUBLIC = obj({k: HP[k][0] for k in ("n_epochs", "batch_size", "learning_rate_multiplier")},
                required=[])
HP_IN = {"type": "object", "additionalProperties": False,
         "properties": {k: s for k, (s, f) in HP.items() if "FT_HP_DPO" not in f}}
HP_DPO_IN = {"type": "object", "additionalProperties": False,
             "properties": {k: s for k, (s, f) in HP.items() if "FT_HP_SFT" not in f}}

# a registered model's name and an alias (common/base/include/ft/modelref.h)
NAME_RE = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
EP_NAME_RE = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
ENDPOINT_KINDS = ["ftserve", "vllm", "llamacpp"]
ALIAS_RE = "^[a-z][a-z0-9_-]{0,63}$"
TAGS = {"type": "object", "additionalProperties": {"type": S}}
TAGS_IN = {"type": ["object", "null"], "maxProperties": 32,
           "additionalProperties": {"type": S, "maxLength": 256}}

schemas = {
    "Hyperparameter": obj({
        "name": {"type": S}, "type": {"type": S, "enum": ["integer", "number", "boolean",
                                                           "boolean_or_integer", "choice"]},
        "minimum": {"type": N}, "maximum": {"type": N},
        "choices": {"type": "array", "items": {"type": S}}, "auto": {"type": B},
        "method": {"type": S, "enum": ["supervised", "dpo"]}, "default": {"type": S},
        "description": {"type": S}}, required=["name", "type", "auto", "default", "description"]),
    "HyperparameterList": obj({"object": const("list"),
                               "data": {"type": "array", "items": ref("Hyperparameter")}}),
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
        "status": {"type": S, "enum": ["validating_files", "queued", "running", "pausing", "paused",
                                        "succeeded", "failed", "cancelled"]},
        "trained_tokens": nullable(I), "training_file": {"type": S}, "validation_file": nullable(S),
        "estimated_finish": nullable(I), "integrations": {"type": "array"},
        "metadata": {"type": "object", "additionalProperties": {"type": S}},
        "user_provided_suffix": nullable(S),
        "state": {"type": S, "enum": ["validating_files", "queued", "dispatched", "running",
                                       "cancelling", "pausing", "paused", "succeeded", "failed",
                                       "cancelled"]},
        "adapter": {"type": S, "enum": ["none", "lora", "qlora"]},
        "lora": {"type": ["object", "null"]}, "gpus": {"type": I}, "priority": {"type": I},
        "attempt": {"type": I}, "max_attempts": {"type": I}, "worker": nullable(S),
        "latest_metrics": {"type": ["object", "null"]}, "registered_model": nullable(S),
        "parent_version": nullable(S)}),
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
            "r": {"type": I, "minimum": 1, "maximum": 1024, "default": 16},
            "alpha": {"type": N, "exclusiveMinimum": 0, "maximum": 65536, "default": 32},
            "dropout": {"type": N, "minimum": 0, "maximum": 0.95, "default": 0.05},
            "target_modules": {"type": "array", "items": {"type": S}, "minItems": 1, "maxItems": 32},
            "layers_to_transform": {"type": [I, "array", "null"], "minimum": 0, "maximum": 4095,
                                    "items": {"type": I, "minimum": 0, "maximum": 4095},
                                    "minItems": 1}}},
        "gpus": {"type": I, "minimum": 0, "maximum": 64},
        "priority": {"type": I, "minimum": -100, "maximum": 100},
        "registered_model": {"type": ["string", "null"], "pattern": NAME_RE},
    }, required=["model", "training_file"], extra=False),
    "JobEstimate": obj({
        "object": const("fine_tuning.job.estimate"), "model": {"type": S},
        "method": {"type": S, "enum": ["supervised", "dpo"]},
        "adapter": {"type": S, "enum": ["none", "lora", "qlora"]},
        "hyperparameters": obj({"n_epochs": {"type": I}, "batch_size": {"type": I},
                                "gradient_accumulation_steps": {"type": I},
                                "max_steps": nullable(I)}),
        "gpu_memory_bytes": {"type": I, "description": "GPU memory per GPU, as admission computes it"},
        "dataset": {"type": ["string", "null"], "description": "the training file's newest valid dataset"},
        "training_examples": nullable(I),
        "training_tokens": {"type": ["integer", "null"],
                            "description": "approximate tokens of one pass (the dataset's stats.approx_tokens)"},
        "steps": nullable(I), "total_tokens": nullable(I),
        "tokens_per_second": {"type": ["number", "null"],
                              "description": "median of the steps measured on the team's 20 newest jobs of this model, adapter and method"},
        "throughput_samples": {"type": I}, "seconds": nullable(I)}),
    "Caller": obj({
        "object": const("caller"), "key_id": {"type": S}, "key_name": {"type": S},
        "role": {"type": S, "enum": ["viewer", "member", "admin"]}, "team": ref("Team")}),
    "AuditEntry": obj({
        "id": {"type": I}, "object": const("audit_log.entry"), "created_at": {"type": I},
        "key_id": nullable(S), "action": {"type": S}, "object_type": nullable(S),
        "object_id": nullable(S), "outcome": {"type": S, "enum": ["allowed", "denied"]},
        "status_code": nullable(I), "remote_addr": nullable(S), "detail": {}}),
    "AuditList": obj({
        "object": const("list"), "data": {"type": "array", "items": ref("AuditEntry")},
        "has_more": {"type": B}, "first_id": nullable(I), "last_id": nullable(I)}),
    "Event": obj({
        "id": {"type": S}, "object": const("fine_tuning.job.event"), "created_at": {"type": I},
        "level": {"type": S, "enum": ["info", "warn", "error"]}, "message": {"type": S},
        "data": {"description": "a status change: {\"status\": ...}; metrics: the step's figures"},
        "type": {"type": S, "enum": ["message", "metrics"],
                 "description": "OpenAI's two kinds: a status change is a message"}}),
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
        "preview_messages": {"type": "array", "items": {"type": "array", "items": obj({
            "role": {"type": S}, "content": {"type": S}, "truncated": {"type": B}})}},
        "report": {"type": ["object", "null"]}, "stats": {"type": ["object", "null"]},
        "created_at": {"type": I}, "validated_at": nullable(I)}),
    "DatasetList": list_of("Dataset"),
    "DatasetCreate": obj({"file_id": {"type": S, "minLength": 1},
                          "name": {"type": ["string", "null"], "minLength": 1, "maxLength": 256}},
                         required=["file_id"], extra=False),
    "Model": obj({
        "id": {"type": S}, "object": const("model"), "created": {"type": I},
        "owned_by": {"type": S}, "model_id": {"type": S}, "architecture": {"type": S},
        "parameter_count": {"type": I}, "chat_template": nullable(S),
        "description": {"type": S},
        "kind": {"type": S, "enum": ["base", "fine-tuned", "checkpoint"]},
        "sha256": nullable(S), "parent": {"type": S}, "registered_model": {"type": S},
        "version": {"type": I}, "fine_tuning_job_id": {"type": S}, "step_number": {"type": I}},
        required=["id", "object", "created", "owned_by", "model_id", "architecture",
                  "parameter_count", "chat_template", "kind", "sha256"]),
    "ModelDeleted": obj({"id": {"type": S}, "object": const("model"), "deleted": {"type": B}}),
    "ModelList": list_of("Model"),
    "ModelCreate": obj({"name": {"type": S, "minLength": 1, "maxLength": 256},
                        "path": {"type": S, "minLength": 1},
                        "description": {"type": ["string", "null"], "maxLength": 2000}},
                       required=["name", "path"], extra=False),
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
    "ApiKeyCreated": {"allOf": [ref("ApiKey"), obj({"key": {
        "type": S, "pattern": "^ftk-",
        "description": "the key, shown once: an idempotent replay of the request leaves it out"}},
        required=[])]},
    "ApiKeyList": list_of("ApiKey"),
    "ApiKeyCreate": obj({
        "name": {"type": ["string", "null"], "maxLength": 128},
        "role": {"type": ["string", "null"], "enum": ["viewer", "member", "admin", None]},
        "rate_limit_per_min": {"type": ["integer", "null"], "minimum": 1, "maximum": 1000000},
        "expires_at": {"type": ["integer", "null"], "minimum": 1, "maximum": 253402300799}},
        required=[], extra=False),
    "ApiKeyUpdate": obj({
        "name": {"type": ["string", "null"], "maxLength": 128},
        "rate_limit_per_min": {"type": ["integer", "null"], "minimum": 1, "maximum": 1000000},
        "expires_at": {"type": ["integer", "null"], "minimum": 0, "maximum": 253402300799}},
        required=[], extra=False),
    "Webhook": obj({
        "id": {"type": S}, "object": const("webhook"), "url": {"type": S},
        "events": {"type": "array", "items": {"type": S}}, "enabled": {"type": B},
        "disabled_reason": nullable(S), "created_at": {"type": I}, "rotating": {"type": B}}),
    "WebhookWithSecret": {"allOf": [ref("Webhook"), obj({"secret": {
        "type": S, "pattern": "^whsec_",
        "description": "shown once: an idempotent replay of the request leaves it out"}},
        required=[])]},
    "WebhookList": list_of("Webhook"),
    "WebhookCreate": obj({
        "url": {"type": S, "minLength": 1, "maxLength": 2048},
        "events": {"type": "array", "minItems": 1, "maxItems": 16,
                   "items": {"type": S, "enum": ["fine_tuning.job.succeeded", "fine_tuning.job.failed",
                                                 "fine_tuning.job.cancelled", "model.version.created",
                                                 "model.alias.moved", "model.export.succeeded",
                                                 "model.export.failed", "eval.succeeded",
                                                 "eval.failed", "experiment.arm.stopped",
                                                 "experiment.decided", "monitor.drift.detected"]}}},
        extra=False),
    "WebhookDelivery": obj({
        "id": {"type": S}, "object": const("webhook.delivery"), "webhook_id": {"type": S},
        "event_type": {"type": S},
        "status": {"type": S, "enum": ["pending", "delivering", "succeeded", "failed", "abandoned"]},
        "attempts": {"type": I}, "last_status_code": nullable(I), "last_error": nullable(S),
        "created_at": {"type": I}, "next_attempt_at": nullable(I), "delivered_at": nullable(I),
        "payload": {}}),
    "WebhookDeliveryList": list_of("WebhookDelivery"),
    # the model registry (docs/registry.md)
    "RegisteredModel": obj({
        "id": {"type": S}, "object": const("registered_model"), "name": {"type": S},
        "description": {"type": S}, "tags": TAGS, "created_at": {"type": I},
        "updated_at": {"type": I}, "latest_version": nullable(I), "versions": {"type": I},
        "aliases": {"type": "object", "additionalProperties": {"type": I}}}),
    "RegisteredModelList": list_of("RegisteredModel"),
    "RegisteredModelCreate": obj({"name": {"type": S, "pattern": NAME_RE},
                                  "description": {"type": ["string", "null"], "maxLength": 4096},
                                  "tags": TAGS_IN}, required=["name"], extra=False),
    "RegisteredModelUpdate": obj({"description": {"type": ["string", "null"], "maxLength": 4096},
                                  "tags": TAGS_IN}, required=[], extra=False),
    "RegisteredModelDeleted": obj({"id": {"type": S}, "object": const("registered_model"),
                                   "name": {"type": S}, "deleted": {"type": B}}),
    "ArtifactFile": obj({"path": {"type": S}, "sha256": {"type": S, "pattern": "^[0-9a-f]{64}$"},
                         "bytes": {"type": I}, "url": {"type": S}}),
    "ArtifactBrief": obj({"id": {"type": S}, "kind": {"type": S},
                          "sha256": {"type": S, "pattern": "^[0-9a-f]{64}$"}, "bytes": {"type": I},
                          "files": {"type": "array", "items": ref("ArtifactFile")}}),
    "Lineage": obj({
        "job": {"type": ["object", "null"]}, "checkpoint": {"type": ["object", "null"]},
        "parent_version": {"type": ["object", "null"]}, "base_model": {"type": "object"},
        "training_file": {"type": ["object", "null"]}, "validation_file": {"type": ["object", "null"]},
        "dataset": nullable(S), "dataset_stats": {"type": ["object", "null"]},
        "method": nullable(S), "adapter": nullable(S),
        "hyperparameters": {"type": ["object", "null"]}, "metrics": {"type": ["object", "null"]},
        "trainer_version": nullable(S), "trained_tokens": nullable(I)}),
    "ModelVersion": obj({
        "id": {"type": S}, "object": const("model_version"), "model": {"type": S},
        "version": {"type": I}, "ref": {"type": S}, "kind": {"type": S, "enum": ["adapter", "merged"]},
        "status": {"type": S}, "description": {"type": S}, "tags": TAGS,
        "aliases": {"type": "array", "items": {"type": S}},
        "source": {"type": S, "enum": ["job", "checkpoint"]}, "fine_tuned_model": nullable(S),
        "created_at": {"type": I}, "artifact": ref("ArtifactBrief"), "lineage": ref("Lineage")}),
    "ModelVersionList": list_of("ModelVersion"),
    "VersionCreate": obj({"checkpoint": {"type": S, "minLength": 1},
                          "description": {"type": ["string", "null"], "maxLength": 4096},
                          "tags": TAGS_IN}, required=["checkpoint"], extra=False),
    "ModelVersionDeleted": obj({"id": {"type": S}, "object": const("model_version"),
                                "model": {"type": S}, "version": {"type": I}, "deleted": {"type": B}}),
    "Alias": obj({"object": const("model_alias"), "model": {"type": S}, "alias": {"type": S},
                  "version": {"type": I}, "protected": {"type": B}, "updated_at": {"type": I}}),
    "AliasList": obj({"object": const("list"), "data": {"type": "array", "items": ref("Alias")},
                      "has_more": {"type": B}}),
    "AliasSet": obj({"version": {"type": I, "minimum": 1, "maximum": 2147483647},
                     "expect_version": {"type": ["integer", "null"], "minimum": 0,
                                        "maximum": 2147483647},
                     "protected": {"type": ["boolean", "null"]}}, required=["version"], extra=False),
    "AliasDeleted": obj({"object": const("model_alias"), "model": {"type": S}, "alias": {"type": S},
                         "deleted": {"type": B}}),
    "AliasChange": obj({"id": {"type": S}, "object": const("model_alias.change"),
                        "alias": {"type": S},
                        "action": {"type": S, "enum": ["set", "removed", "protected", "unprotected"]},
                        "from_version": nullable(I), "to_version": nullable(I), "key_id": nullable(S),
                        "created_at": {"type": I}}),
    "AliasChangeList": list_of("AliasChange"),
    "Export": obj({
        "id": {"type": S}, "object": const("model.export"), "model": {"type": S},
        "version": {"type": I}, "model_version_id": {"type": S}, "format": {"type": S},
        "options": {"type": "object"},
        "status": {"type": S, "enum": ["queued", "dispatched", "running", "cancelling", "succeeded",
                                        "failed", "cancelled"]},
        "attempt": {"type": I}, "max_attempts": {"type": I}, "worker": nullable(S),
        "progress": {"type": ["object", "null"]}, "error": {"type": ["object", "null"]},
        "artifact": {"type": ["object", "null"]}, "created_at": {"type": I},
        "started_at": nullable(I), "finished_at": nullable(I), "priority": {"type": I}}),
    "ExportList": list_of("Export"),
    "ExportCreate": obj({"model": {"type": S, "minLength": 1}, "format": {"type": S, "minLength": 1},
                         "options": {"type": ["object", "null"]},
                         "priority": {"type": ["integer", "null"], "minimum": -100, "maximum": 100}},
                        required=["model", "format"], extra=False),
    "ExportEvent": obj({
        "id": {"type": S}, "object": const("model.export.event"), "created_at": {"type": I},
        "level": {"type": S, "enum": ["info", "warn", "error"]}, "message": {"type": S},
        "data": {}, "type": {"type": S, "enum": ["message", "metrics", "status"]}}),
    "ExportEventList": list_of("ExportEvent"),
    "ExportFormat": obj({"name": {"type": S}, "artifact_kind": {"type": S},
                         "versions": {"type": "array", "items": {"type": S}},
                         "options": {"type": "array", "items": {"type": "object"}},
                         "description": {"type": S}}),
    "ExportFormatList": obj({"object": const("list"),
                             "data": {"type": "array", "items": ref("ExportFormat")}}),
    "Artifact": obj({
        "id": {"type": S}, "object": const("artifact"), "kind": {"type": S},
        "sha256": {"type": S, "pattern": "^[0-9a-f]{64}$"}, "bytes": {"type": I},
        "created_at": {"type": I}, "files": {"type": "array", "items": ref("ArtifactFile")},
        "model_version": nullable(S), "export": {"type": ["object", "null"]}},
        required=["id", "object", "kind", "sha256", "bytes", "created_at", "files", "export"]),
    "ArtifactList": obj({"object": const("list"), "data": {"type": "array", "items": ref("Artifact")},
                         "has_more": {"type": B}}),
    "StorageUsage": obj({"object": const("storage_usage"), "stored_bytes": {"type": I},
                         "quota_bytes": nullable(I)}),
    # deployments (docs/deployments.md)
    "Endpoint": obj({
        "id": {"type": S}, "object": const("endpoint"), "name": {"type": S},
        "kind": {"type": S, "enum": ENDPOINT_KINDS}, "url": {"type": S},
        "has_api_key": {"type": B, "description": "the credential itself is never returned"},
        "health": {"type": S, "enum": ["unknown", "ok", "unreachable"]},
        "health_reason": nullable(S), "checked_at": nullable(I), "created_at": {"type": I},
        "updated_at": {"type": I},
        "deployments": {"type": I, "description": "deployments on it that are not stopped"}}),
    "EndpointList": list_of("Endpoint"),
    "EndpointCreate": obj({
        "name": {"type": S, "pattern": EP_NAME_RE},
        "kind": {"type": S, "enum": ENDPOINT_KINDS},
        "url": {"type": S, "minLength": 1, "maxLength": 2048,
                "description": "the server's base URL, without /v1"},
        "api_key": {"type": ["string", "null"], "minLength": 1, "maxLength": 4096,
                    "description": "the endpoint's bearer token; stored sealed, never returned"}},
        required=["name", "kind", "url"], extra=False),
    "EndpointUpdate": obj({
        "name": {"type": ["string", "null"], "pattern": EP_NAME_RE},
        "kind": {"type": ["string", "null"], "description": "cannot change"},
        "url": {"type": ["string", "null"], "minLength": 1, "maxLength": 2048},
        "api_key": {"type": ["string", "null"], "minLength": 1, "maxLength": 4096,
                    "description": "a new token; null removes it"}},
        required=[], extra=False),
    "EndpointDeleted": obj({"id": {"type": S}, "object": const("endpoint"), "deleted": {"type": B}}),
    "Deployment": obj({
        "id": {"type": S}, "object": const("deployment"),
        "endpoint": obj({"id": {"type": S}, "name": {"type": S},
                         "kind": {"type": S, "enum": ENDPOINT_KINDS}}),
        "model": {"type": S, "description": "the reference as given"},
        "registered_model": nullable(S), "alias": nullable(S),
        "version": {"type": ["object", "null"], "properties": {
            "id": {"type": S}, "model": {"type": S}, "version": {"type": I},
            "served_name": {"type": S}}},
        "served_names": {"type": "array", "items": {"type": S},
                         "description": "the names the endpoint answers it under"},
        "loaded_version_id": nullable(S),
        "status": {"type": S, "enum": ["pending", "loading", "ready", "failed", "stopped"]},
        "status_reason": nullable(S), "log_texts": {"type": B}, "gguf_type": nullable(S),
        "llamacpp": {"type": ["object", "null"],
                     "description": "llamacpp endpoints: the exports, files and llama-server command"},
        "unloaded": {"type": B}, "created_at": {"type": I}, "updated_at": {"type": I},
        "ready_at": nullable(I), "stopped_at": nullable(I)}),
    "DeploymentList": list_of("Deployment"),
    "DeploymentCreate": obj({
        "endpoint": {"type": S, "minLength": 1, "description": "an endpoint's id or name"},
        "model": {"type": S, "minLength": 1,
                  "description": "NAME@ALIAS (follows the alias), NAME/N or ft:BASE:JOB"},
        "log_texts": {"type": ["boolean", "null"]},
        "gguf_type": {"type": ["string", "null"], "enum": ["F32", "F16", "Q8_0", "Q4_0", "Q4_K_M", None],
                      "description": "llamacpp endpoints: the base's GGUF type (Q8_0)"}},
        required=["endpoint", "model"], extra=False),
    # offline evaluation, experiments, drift (docs/evaluation.md)
    "EvalModel": obj({"position": {"type": I}, "model": {"type": S},
                      "model_version_id": nullable(S), "base_model": {"type": S},
                      "metrics": {"type": ["object", "null"],
                                  "description": "perplexity, nll, tokens, rouge_l, bleu, facts, "
                                                 "rows, answer_tokens (docs/evaluation.md)"},
                      "judge": {"type": ["object", "null"],
                                "description": "with a judge: the answers against the references "
                                               "(pending, failed, wins, ties, losses, win_rate, "
                                               "ci95)",
                                "properties": {"pending": {"type": I}, "failed": {"type": I},
                                               "wins": {"type": I}, "ties": {"type": I},
                                               "losses": {"type": I},
                                               "win_rate": {"type": ["number", "null"]},
                                               "ci95": {"type": ["array", "null"],
                                                        "items": {"type": "number"}}}}}),
    "Eval": obj({
        "id": {"type": S}, "object": const("evaluation"), "name": {"type": S}, "file": {"type": S},
        "options": {"type": "object"},
        "status": {"type": S, "enum": ["queued", "dispatched", "running", "cancelling", "succeeded",
                                        "failed", "cancelled"]},
        "attempt": {"type": I}, "max_attempts": {"type": I}, "worker": nullable(S),
        "progress": {"type": ["object", "null"]}, "error": {"type": ["object", "null"]},
        "created_at": {"type": I}, "started_at": nullable(I), "finished_at": nullable(I),
        "priority": {"type": I}, "models": {"type": "array", "items": ref("EvalModel")},
        "judge": {"type": ["object", "null"],
                  "description": "the LLM judge (url, model, prompt, max_tokens, api_key_set)"},
        "rows": {"type": "array", "items": {"type": "object"},
                 "description": "with ?rows=true: [{line, reference, answers: [...]}]"}},
        required=["id", "object", "name", "file", "options", "status", "attempt", "max_attempts",
                  "worker", "progress", "error", "created_at", "started_at", "finished_at",
                  "priority", "models", "judge"]),
    "EvalList": list_of("Eval"),
    "EvalCreate": obj({
        "file": {"type": S, "minLength": 1},
        "models": {"type": "array", "minItems": 1, "maxItems": 8,
                   "items": {"type": S, "minLength": 1, "maxLength": 512}},
        "name": {"type": ["string", "null"], "maxLength": 256},
        "options": {"type": ["object", "null"], "additionalProperties": False, "properties": {
            "max_new_tokens": {"type": ["integer", "null"], "minimum": 1, "maximum": 4096},
            "rouge_tokenizer": {"type": ["string", "null"], "enum": ["default", "cjk", None]},
            "bleu_tokenizer": {"type": ["string", "null"], "enum": ["13a", "zh", None]},
            "max_rows": {"type": ["integer", "null"], "minimum": 1, "maximum": 10000}}},
        "priority": {"type": ["integer", "null"], "minimum": -100, "maximum": 100},
        "judge": JUDGE_IN},
        required=["file", "models"], extra=False),
    "EvalEvent": obj({
        "id": {"type": S}, "object": const("evaluation.event"), "created_at": {"type": I},
        "level": {"type": S, "enum": ["info", "warn", "error"]}, "message": {"type": S},
        "data": {}, "type": {"type": S, "enum": ["message", "metrics", "status"]}}),
    "EvalEventList": list_of("EvalEvent"),
    "ExperimentArm": obj({
        "position": {"type": I}, "name": {"type": S}, "model": {"type": S},
        "model_version_id": nullable(S), "version": {"type": ["object", "null"]},
        "weight": {"type": N}, "status": {"type": S, "enum": ["active", "stopped"]},
        "stop_reason": nullable(S), "stopped_at": nullable(I)}),
    "Experiment": obj({
        "id": {"type": S}, "object": const("experiment"), "name": {"type": S},
        "description": {"type": S}, "endpoint_id": nullable(S),
        "assignment": {"type": S, "enum": ["user", "request"]},
        "status": {"type": S, "enum": ["draft", "running", "paused", "stopped"]},
        "stop_reason": nullable(S), "alpha": {"type": N}, "power": {"type": N},
        "bootstrap_rounds": {"type": I}, "seed": {"type": I}, "guardrails": {"type": "object"},
        "judge": {"type": ["object", "null"]}, "created_at": {"type": I},
        "started_at": nullable(I), "ended_at": nullable(I),
        "arms": {"type": "array", "items": ref("ExperimentArm")}}),
    "ExperimentList": list_of("Experiment"),
    "ExperimentCreate": obj({
        "name": {"type": S, "minLength": 1, "maxLength": 256},
        "description": {"type": ["string", "null"], "maxLength": 4096},
        "endpoint_id": {"type": ["string", "null"]},
        "assignment": {"type": ["string", "null"], "enum": ["user", "request", None]},
        "arms": {"type": "array", "minItems": 2, "maxItems": 16, "items": obj({
            "name": {"type": S, "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$"},
            "model": {"type": S, "minLength": 1},
            "weight": {"type": N, "minimum": 0, "maximum": 1}}, extra=False),
            "description": "the first arm is the control; the weights sum to 1"},
        "alpha": {"type": ["number", "null"], "minimum": 1e-6, "maximum": 0.2},
        "power": {"type": ["number", "null"], "minimum": 0.5, "maximum": 0.999},
        "bootstrap_rounds": {"type": ["integer", "null"], "minimum": 100, "maximum": 10000},
        "seed": {"type": ["integer", "null"], "minimum": 0},
        "guardrails": {"type": ["object", "null"], "additionalProperties": False, "properties": {
            "max_error_rate": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
            "max_p95_latency_ms": {"type": ["number", "null"], "minimum": 1, "maximum": 3600000},
            "min_requests": {"type": ["integer", "null"], "minimum": 10, "maximum": 1000000000}}},
        "judge": JUDGE_IN},
        required=["name", "arms"], extra=False),
    "ExperimentStop": obj({"reason": {"type": ["string", "null"], "maxLength": 1024}},
                          required=[], extra=False),
    "Empty": obj({}, required=[], extra=False),
    "Assignment": obj({
        "object": const("experiment.assignment"), "experiment": {"type": S},
        "status": {"type": S}, "sticky": {"type": B}, "u": {"type": N}, "arm": nullable(S),
        "position": {"type": I}, "label": {"type": S}, "model": {"type": S},
        "model_version_id": nullable(S)},
        required=["object", "experiment", "status", "sticky", "u", "arm"]),
    "ExperimentResults": obj({
        "object": const("experiment.results"), "experiment": {"type": S}, "status": {"type": S},
        "computed_at": nullable(I)},
        required=["object", "experiment", "status", "computed_at"]),
    "Judgment": obj({
        "id": {"type": S}, "object": const("experiment.judgment"), "experiment": {"type": S},
        "arm_a": {"type": S}, "arm_b": {"type": S}, "source": {"type": S, "enum": ["human", "llm"]},
        "judge": {"type": S}, "status": {"type": S, "enum": ["pending", "done", "failed"]},
        "outcome": {"type": ["string", "null"], "enum": ["a", "b", "tie", "both_bad", None]},
        "response_a": nullable(S), "response_b": nullable(S), "prompt": nullable(S),
        "answer_a": nullable(S), "answer_b": nullable(S), "verdicts": {"type": ["object", "null"]},
        "comment": nullable(S), "attempts": {"type": I}, "error": nullable(S),
        "created_at": {"type": I}, "decided_at": nullable(I)}),
    "JudgmentList": list_of("Judgment"),
    "JudgmentCreate": obj({
        "arm_a": {"type": S, "minLength": 1}, "arm_b": {"type": S, "minLength": 1},
        "winner": {"type": S, "enum": ["a", "b", "tie", "both_bad"]},
        "response_a": {"type": ["string", "null"], "minLength": 1},
        "response_b": {"type": ["string", "null"], "minLength": 1},
        "prompt": {"type": ["string", "null"]}, "answer_a": {"type": ["string", "null"]},
        "answer_b": {"type": ["string", "null"]},
        "comment": {"type": ["string", "null"], "maxLength": 4096},
        "judge": {"type": ["string", "null"], "maxLength": 256}},
        required=["arm_a", "arm_b", "winner"], extra=False),
    "JudgeRequest": obj({
        "arm_a": {"type": S, "minLength": 1}, "arm_b": {"type": S, "minLength": 1},
        "response_a": {"type": ["string", "null"], "minLength": 1},
        "response_b": {"type": ["string", "null"], "minLength": 1},
        "prompt": {"type": ["string", "null"]}, "answer_a": {"type": ["string", "null"]},
        "answer_b": {"type": ["string", "null"]}},
        required=["arm_a", "arm_b"], extra=False),
    "ReplayArm": obj({"arm": {"type": S}, "position": {"type": I},
                      "answers": {"type": I, "description": "rows this arm has answered"}}),
    "Replay": obj({
        "id": {"type": S}, "object": const("experiment.replay"), "experiment": {"type": S},
        "file": {"type": S}, "max_rows": {"type": I}, "max_tokens": {"type": I},
        "status": {"type": S, "enum": ["queued", "running", "succeeded", "failed"]},
        "rows": {"type": I, "description": "prompts read from the file"},
        "rows_sent": {"type": I, "description": "rows every arm has answered"},
        "judgments_created": {"type": I,
                              "description": "pending LLM judgments made (0 without a judge)"},
        "error": nullable(S), "attempts": {"type": I}, "created_at": {"type": I},
        "started_at": nullable(I), "finished_at": nullable(I),
        "arms": {"type": "array", "items": ref("ReplayArm")},
        "data": {"type": "array", "items": {"type": "object"},
                 "description": "with ?rows=true: [{index, line, prompt, answers: {arm: text}}]"}},
        required=["id", "object", "experiment", "file", "max_rows", "max_tokens", "status",
                  "rows", "rows_sent", "judgments_created", "error", "attempts", "created_at",
                  "started_at", "finished_at", "arms"]),
    "ReplayList": list_of("Replay"),
    "ReplayCreate": obj({
        "file": {"type": S, "minLength": 1,
                 "description": "a chat JSONL file of the team (the evaluation row format)"},
        "max_rows": {"type": ["integer", "null"], "minimum": 1, "maximum": 2000},
        "max_tokens": {"type": ["integer", "null"], "minimum": 1, "maximum": 4096}},
        required=["file"], extra=False),
    "Feedback": obj({
        "object": const("feedback"), "response_id": {"type": S},
        "thumbs": {"type": ["string", "null"], "enum": ["up", "down", None]},
        "resolved": nullable(B), "escalated": nullable(B), "comment": nullable(S),
        "created_at": {"type": I}, "updated_at": {"type": I},
        "experiment": {"type": ["object", "null"]}}),
    "FeedbackCreate": obj({
        "response_id": {"type": S, "minLength": 1},
        "thumbs": {"type": ["string", "null"], "enum": ["up", "down", None]},
        "resolved": {"type": ["boolean", "null"]}, "escalated": {"type": ["boolean", "null"]},
        "comment": {"type": ["string", "null"], "maxLength": 4096}},
        required=["response_id"], extra=False),
    "DriftWindow": obj({
        "object": const("drift.window"), "granularity": {"type": S, "enum": ["hour", "day"]},
        "window_start": {"type": I}, "window_end": {"type": I}, "n_requests": {"type": I},
        "metrics": {"type": "object", "description": "prompt_tokens, completion_tokens, "
                    "truncated, refusals, languages (docs/evaluation.md)"},
        "alert": {"type": B}, "alerts": {"type": "array", "items": {"type": S}},
        "computed_at": {"type": I}}),
    "DriftWindowList": obj({"object": const("list"),
                            "data": {"type": "array", "items": ref("DriftWindow")},
                            "has_more": {"type": B}}),
    "DriftMonitor": obj({
        "object": const("drift.monitor"), "deployment_id": {"type": S},
        "status": {"type": S, "enum": ["collecting", "ok", "alert"]},
        "reference_requests": {"type": I}, "min_window_requests": {"type": I},
        "thresholds": {"type": "object"}, "refusal_patterns": {"type": "object"},
        "alert_since": nullable(I), "reference": {"type": "object"}, "created_at": {"type": I},
        "updated_at": {"type": I},
        "latest": {"type": "object", "description": "the latest window of each granularity "
                   "(GET of one monitor)"}},
        required=["object", "deployment_id", "status", "reference_requests",
                  "min_window_requests", "thresholds", "refusal_patterns", "alert_since",
                  "reference", "created_at", "updated_at"]),
    "DriftMonitorList": obj({"object": const("list"),
                             "data": {"type": "array", "items": ref("DriftMonitor")},
                             "has_more": {"type": B}}),
    "DriftSet": obj({
        "reference_requests": {"type": ["integer", "null"], "minimum": 50, "maximum": 100000},
        "min_window_requests": {"type": ["integer", "null"], "minimum": 10, "maximum": 100000},
        "thresholds": {"type": ["object", "null"], "additionalProperties": False, "properties": {
            k: {"type": "number"} for k in ("psi_min", "ks_p_max", "js_min", "chi2_p_max",
                                            "auc_min", "perm_alpha", "rate_diff_min")}},
        "refusal_patterns": {"type": ["object", "null"], "additionalProperties": False,
                             "properties": {l: {"type": "array", "maxItems": 64, "items": {
                                 "type": S, "minLength": 1, "maxLength": 256}}
                                 for l in ("en", "zh", "ja", "ko", "ru", "ar", "other")}},
        "reset": {"type": ["boolean", "null"]}}, required=[], extra=False),
    "DriftDeleted": obj({"object": const("drift.monitor"), "deployment_id": {"type": S},
                         "deleted": {"type": B}}),
    # a chat through a deployment (the console's playground): OpenAI's request, sent on
    "DeploymentChat": obj({
        "messages": {"type": "array", "minItems": 1, "items": {"type": "object"},
                     "description": "OpenAI chat messages"},
        "model": {"type": ["string", "null"],
                  "description": "one of the deployment's served_names (default: the first)"},
        "stream": {"type": ["boolean", "null"], "enum": [True, None],
                   "description": "the answer is always streamed: false is refused"}},
        required=["messages"], extra=True),
}

ERR = {"description": "error: 4xx is the caller's, 5xx the server's (docs/api.md lists the "
                      "statuses: 400, 401, 403, 404, 405, 408, 409, 413, 415, 422, 429, 503)",
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
MODEL_PARAM = {"name": "model", "in": "path", "required": True,
               "description": "a base model's name or id, ft:BASE:JOB or ft:BASE:JOB:ckpt-step-N",
               "schema": {"type": S, "pattern": "^[A-Za-z0-9._:-]{1,300}$"}}
RM_NAME = {"name": "name", "in": "path", "required": True, "description": "registered model name",
           "schema": {"type": S, "pattern": NAME_RE}}
VERSION = {"name": "version", "in": "path", "required": True,
           "description": "a version number, an alias, or latest",
           "schema": {"type": S, "pattern": "^([1-9][0-9]{0,8}|[a-z][a-z0-9_-]{0,63})$"}}
ALIAS = {"name": "alias", "in": "path", "required": True, "description": "alias",
         "schema": {"type": S, "pattern": ALIAS_RE}}
EXP_ID = path_param("id", "export id", "ftexp")
ART_ID = path_param("id", "artifact id", "art")
BINARY = {"type": S, "format": "binary"}
RANGE = {"name": "Range", "in": "header", "required": False,
         "description": "one byte range (bytes=A-B, bytes=A-, bytes=-N)",
         "schema": {"type": S, "pattern": "^bytes=[0-9]{0,18}-[0-9]{0,18}$"}}


def download(summary):
    return {"200": {"description": "the whole file", "content": {"application/octet-stream": {"schema": BINARY}}},
            "206": {"description": "the range asked for (Content-Range)",
                    "content": {"application/octet-stream": {"schema": BINARY}}},
            "416": {"description": "the range is outside the file (Content-Range: bytes */SIZE)",
                    "content": {"application/json": {"schema": ref("Error")}}},
            "default": ERR}
WH_ID = path_param("id", "webhook id", "wh")
EP_PARAM = path_param("endpoint", "an endpoint's id or name")
DEP_ID = path_param("id", "deployment id", "dep")
EVAL_ID = path_param("id", "evaluation id", "fteval")
XP_ID = path_param("id", "experiment id", "exp")


def accepted(schema, desc):
    return {"202": {"description": desc, "content": {"application/json": {"schema": schema}}},
            "default": ERR}


paths = {
    "/v1/openapi.json": {"get": op("getOpenapi", "this document", ok({"type": "object"}),
                                   security=[], tags=["meta"])},
    "/health": {"get": op("getHealth", "readiness: 200 when PostgreSQL answers, 503 otherwise",
                          {**ok(obj({"status": const("ok"), "database": const("ok"),
                                     "store": {"type": S, "enum": ["local", "s3"]}})),
                           "503": {"description": "PostgreSQL cannot be reached",
                                   "content": {"application/json": {"schema": ref("Error")}}}},
                          security=[], tags=["meta"])},
    "/health/live": {"get": op("getHealthLive", "liveness: 200 while the process answers",
                               ok(obj({"status": const("ok")})), security=[], tags=["meta"])},
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
        "get": op("listJobs", "list jobs, newest first", ok(ref("JobList")), PAGE + [
            {"name": "metadata", "in": "query", "required": False, "style": "deepObject",
             "explode": True,
             "description": "metadata[KEY]=VALUE: only jobs whose metadata holds every pair "
                            "given; metadata=null: only jobs without metadata (OpenAI's filter)",
             "schema": {"type": "object", "additionalProperties": {"type": S}}}],
            tags=["jobs"]),
    },
    "/v1/fine_tuning/jobs/estimate": {
        "post": op("estimateJob", "what a job would need: tokens, steps, time and GPU memory; "
                   "the same body and checks as createJob, nothing created",
                   ok(ref("JobEstimate")), request=body("JobCreate"), tags=["jobs"]),
    },
    "/v1/fine_tuning/jobs/{id}": {
        "get": op("getJob", "one job", ok(ref("Job")), [JOB_ID], tags=["jobs"]),
    },
    "/v1/fine_tuning/hyperparameters": {
        "get": op("listHyperparameters", "the hyperparameters a job accepts: types, ranges, "
                  "defaults and a one-line explanation each (the trainer's own table)",
                  ok(ref("HyperparameterList")), tags=["jobs"]),
    },
    "/v1/fine_tuning/jobs/{id}/cancel": {
        "post": op("cancelJob", "cancel a job", ok(ref("Job")), [JOB_ID, IDEM], tags=["jobs"]),
    },
    "/v1/fine_tuning/jobs/{id}/pause": {
        "post": op("pauseJob", "pause a job: its trainer checkpoints and stops; it waits, paused, "
                   "holding no worker", ok(ref("Job")), [JOB_ID, IDEM], tags=["jobs"]),
    },
    "/v1/fine_tuning/jobs/{id}/resume": {
        "post": op("resumeJob", "resume a paused job: queued again, it starts from its last "
                   "checkpoint", ok(ref("Job")), [JOB_ID, IDEM], tags=["jobs"]),
    },
    "/v1/fine_tuning/jobs/{id}/events": {
        "get": op("listJobEvents",
                  "job events, newest first; with stream=true a live text/event-stream of every "
                  "event oldest first (resumed after the Last-Event-ID header), heartbeat "
                  "comments, and a final 'end' event when the job is over (docs/api.md)",
                  {"200": {"description": "a page of events, or the live stream",
                           "content": {"application/json": {"schema": ref("EventList")},
                                       "text/event-stream": {"schema": {"type": S}}}},
                   "default": ERR},
                  [JOB_ID] + PAGE + [
                      {"name": "stream", "in": "query", "required": False,
                       "schema": {"type": B, "default": False},
                       "description": "true: text/event-stream of the job's events until it ends "
                                      "(not with limit or after)"},
                      {"name": "Last-Event-ID", "in": "header", "required": False,
                       "schema": {"type": S, "pattern": "^ftevent-[0-9A-Za-z]{24}$"},
                       "description": "stream: resume after this event of the job"}],
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
        "post": op("createModel", "register a base model from a model folder or a GGUF file (admin)", ok(ref("Model")),
                   [IDEM], body("ModelCreate"), ["models"]),
        "get": op("listModels", "the models the team can use: base models, fine-tuned models and their "
                  "checkpoints, newest first", ok(ref("ModelList")), PAGE, tags=["models"]),
    },
    "/v1/models/{model}": {
        "get": op("getModel", "one model: a base model (name or id), a fine-tuned model (ft:BASE:JOB) "
                  "or a checkpoint (ft:BASE:JOB:ckpt-step-N)", ok(ref("Model")),
                  [MODEL_PARAM], tags=["models"]),
        "delete": op("deleteModel", "delete a fine-tuned model (its version; refused while an alias "
                     "or a deployment needs it)", ok(ref("ModelDeleted")), [MODEL_PARAM],
                     tags=["models"]),
    },
    "/v1/registry/models": {
        "get": op("listRegisteredModels", "the team's registered models, newest first",
                  ok(ref("RegisteredModelList")), PAGE, tags=["registry"]),
        "post": op("createRegisteredModel", "a registered model with no versions yet",
                   ok(ref("RegisteredModel")), [IDEM], body("RegisteredModelCreate"), ["registry"]),
    },
    "/v1/registry/models/{name}": {
        "get": op("getRegisteredModel", "one registered model with its aliases",
                  ok(ref("RegisteredModel")), [RM_NAME], tags=["registry"]),
        "post": op("updateRegisteredModel", "its description and tags", ok(ref("RegisteredModel")),
                   [RM_NAME, IDEM], body("RegisteredModelUpdate"), ["registry"]),
        "delete": op("deleteRegisteredModel", "delete one that has no versions (admin)",
                     ok(ref("RegisteredModelDeleted")), [RM_NAME], tags=["registry"]),
    },
    "/v1/registry/models/{name}/versions": {
        "get": op("listModelVersions", "its versions, highest first", ok(ref("ModelVersionList")),
                  [RM_NAME] + PAGE, tags=["registry"]),
        "post": op("promoteCheckpoint", "promote a checkpoint to the next version",
                   ok(ref("ModelVersion")), [RM_NAME, IDEM], body("VersionCreate"), ["registry"]),
    },
    "/v1/registry/models/{name}/versions/{version}": {
        "get": op("getModelVersion", "one version with its lineage", ok(ref("ModelVersion")),
                  [RM_NAME, VERSION], tags=["registry"]),
        "post": op("updateModelVersion", "its description and tags", ok(ref("ModelVersion")),
                   [RM_NAME, VERSION, IDEM], body("RegisteredModelUpdate"), ["registry"]),
        "delete": op("deleteModelVersion", "delete it (refused while an alias, a deployment, an "
                     "experiment, a child version, a running export or job needs it)",
                     ok(ref("ModelVersionDeleted")), [RM_NAME, VERSION], tags=["registry"]),
    },
    "/v1/registry/models/{name}/versions/{version}/artifacts": {
        "get": op("listVersionArtifacts", "its folder and its exports, with every file's SHA-256",
                  ok(ref("ArtifactList")), [RM_NAME, VERSION], tags=["registry"]),
    },
    "/v1/registry/models/{name}/aliases": {
        "get": op("listAliases", "its aliases", ok(ref("AliasList")), [RM_NAME], tags=["registry"]),
    },
    "/v1/registry/models/{name}/aliases/{alias}": {
        "post": op("setAlias", "point an alias at a version (expect_version: only if it points at "
                   "that one now; protected aliases: admin)", ok(ref("Alias")),
                   [RM_NAME, ALIAS, IDEM], body("AliasSet"), ["registry"]),
        "delete": op("deleteAlias", "remove an alias (protected: admin)", ok(ref("AliasDeleted")),
                     [RM_NAME, ALIAS], tags=["registry"]),
    },
    "/v1/registry/models/{name}/alias_history": {
        "get": op("listAliasHistory", "every alias change, newest first", ok(ref("AliasChangeList")),
                  [RM_NAME, {"name": "alias", "in": "query", "required": False,
                             "schema": {"type": S, "pattern": ALIAS_RE}},
                   {"name": "limit", "in": "query", "required": False,
                    "schema": {"type": I, "minimum": 1, "maximum": 100}},
                   {"name": "after", "in": "query", "required": False,
                    "schema": {"type": S, "pattern": "^[0-9]{1,18}$"}}], tags=["registry"]),
    },
    "/v1/registry/exports": {
        "get": op("listExports", "the team's exports, newest first; ?model=REF: one version's",
                  ok(ref("ExportList")),
                  PAGE + [{"name": "model", "in": "query", "required": False,
                           "schema": {"type": S, "minLength": 1}}], tags=["registry"]),
        "post": op("createExport", "export a version in a format, on a worker", ok(ref("Export")),
                   [IDEM], body("ExportCreate"), ["registry"]),
    },
    "/v1/registry/exports/{id}": {
        "get": op("getExport", "one export: status, progress, its artifact", ok(ref("Export")),
                  [EXP_ID], tags=["registry"]),
    },
    "/v1/registry/exports/{id}/cancel": {
        "post": op("cancelExport", "cancel an export", ok(ref("Export")), [EXP_ID, IDEM],
                   tags=["registry"]),
    },
    "/v1/registry/exports/{id}/events": {
        "get": op("listExportEvents", "export events, newest first", ok(ref("ExportEventList")),
                  [EXP_ID] + PAGE, tags=["registry"]),
    },
    "/v1/registry/export_formats": {
        "get": op("listExportFormats", "the formats, their options and the versions they take",
                  ok(ref("ExportFormatList")), tags=["registry"]),
    },
    "/v1/registry/artifacts/{id}": {
        "get": op("getArtifact", "a stored folder: kind, SHA-256, bytes, files", ok(ref("Artifact")),
                  [ART_ID], tags=["registry"]),
    },
    "/v1/registry/artifacts/{id}/files/{file}": {
        "get": op("getArtifactFile", "one file's bytes, streamed; Range for a part (resume)",
                  download("file"),
                  [ART_ID, {"name": "file", "in": "path", "required": True, "description": "file name",
                            "schema": {"type": S, "pattern": "^[A-Za-z0-9._-]{1,255}$"}}, RANGE],
                  tags=["registry"]),
    },
    "/v1/registry/usage": {
        "get": op("getStorageUsage", "the team's stored bytes and quota", ok(ref("StorageUsage")),
                  tags=["registry"]),
    },
    "/v1/endpoints": {
        "post": op("createEndpoint", "add an inference server to publish to (admin)",
                   ok(ref("Endpoint")), [IDEM], body("EndpointCreate"), ["deployments"]),
        "get": op("listEndpoints", "the team's endpoints, newest first", ok(ref("EndpointList")),
                  PAGE, tags=["deployments"]),
    },
    "/v1/endpoints/{endpoint}": {
        "get": op("getEndpoint", "one endpoint, with its health", ok(ref("Endpoint")), [EP_PARAM],
                  tags=["deployments"]),
        "post": op("updateEndpoint", "change an endpoint's name, URL or credential (admin)",
                   ok(ref("Endpoint")), [EP_PARAM, IDEM], body("EndpointUpdate"), ["deployments"]),
        "delete": op("deleteEndpoint", "delete an endpoint that serves no live deployment (admin)",
                     ok(ref("EndpointDeleted")), [EP_PARAM], tags=["deployments"]),
    },
    "/v1/deployments": {
        "post": op("createDeployment", "deploy a model version to an endpoint",
                   ok(ref("Deployment")), [IDEM], body("DeploymentCreate"), ["deployments"]),
        "get": op("listDeployments", "the team's deployments, newest first",
                  ok(ref("DeploymentList")),
                  PAGE + [{"name": "endpoint", "in": "query", "required": False,
                           "description": "an endpoint's id or name",
                           "schema": {"type": S, "pattern": "^[A-Za-z0-9._-]{1,64}$"}},
                          {"name": "status", "in": "query", "required": False,
                           "schema": {"type": S, "enum": ["pending", "loading", "ready", "failed",
                                                           "stopped"]}}],
                  tags=["deployments"]),
    },
    "/v1/deployments/{id}": {
        "get": op("getDeployment", "one deployment: state, names, llama.cpp's files and command",
                  ok(ref("Deployment")), [DEP_ID], tags=["deployments"]),
        "delete": op("deleteDeployment", "stop a deployment (the controller unloads it)",
                     ok(ref("Deployment")), [DEP_ID], tags=["deployments"]),
    },
    "/v1/deployments/{id}/chat/completions": {
        "post": op("chatWithDeployment",
                   "a chat completion streamed from the deployment's endpoint, sent with its "
                   "sealed credential (member; 409 while not ready)",
                   ok({"type": S, "description": "the endpoint's server-sent events "
                       "(chat.completion.chunk objects, then [DONE]); a failure after the "
                       "first byte is an event {\"error\": {...}}"}, ctype="text/event-stream"),
                   [DEP_ID], body("DeploymentChat"), ["deployments"]),
    },
    "/v1/me": {
        "get": op("getCaller", "the calling key: its id, name, role and team", ok(ref("Caller")),
                  tags=["teams"]),
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
        "post": op("updateKey", "change a key's name, rate limit or expiry (admin; expires_at 0 removes it)",
                   ok(ref("ApiKey")), [path_param("id", "key id", "key"), IDEM], body("ApiKeyUpdate"),
                   ["keys"]),
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
    "/v1/audit_log": {
        "get": op("listAuditLog", "the team's audit log, newest first (admin)", ok(ref("AuditList")),
                  [{"name": "limit", "in": "query", "required": False,
                    "schema": {"type": I, "minimum": 1, "maximum": 100, "default": 20}},
                   {"name": "after", "in": "query", "required": False,
                    "description": "id of the last entry of the previous page",
                    "schema": {"type": I, "minimum": 1}},
                   {"name": "action", "in": "query", "required": False,
                    "schema": {"type": S, "minLength": 1, "maxLength": 64}},
                   {"name": "outcome", "in": "query", "required": False,
                    "schema": {"type": S, "enum": ["allowed", "denied"]}}],
                  tags=["audit"]),
    },
    "/v1/evals": {
        "post": op("createEval", "evaluate models on a chat JSONL file (a worker runs ft-train "
                   "eval): perplexity, greedy answers, ROUGE-L, BLEU, required facts",
                   ok(ref("Eval")), [IDEM], body("EvalCreate"), ["evaluations"]),
        "get": op("listEvals", "the team's evaluations, newest first", ok(ref("EvalList")), PAGE,
                  tags=["evaluations"]),
    },
    "/v1/evals/{id}": {
        "get": op("getEval", "an evaluation: each model's metrics side by side",
                  ok(ref("Eval")), [EVAL_ID, {"name": "rows", "in": "query", "required": False,
                                              "schema": {"type": S, "enum": ["true", "false"]},
                                              "description": "true: every row's answers"}],
                  tags=["evaluations"]),
    },
    "/v1/evals/{id}/cancel": {
        "post": op("cancelEval", "cancel an evaluation", ok(ref("Eval")), [EVAL_ID, IDEM],
                   tags=["evaluations"]),
    },
    "/v1/evals/{id}/events": {
        "get": op("listEvalEvents", "an evaluation's events, newest first",
                  ok(ref("EvalEventList")), [EVAL_ID] + PAGE, tags=["evaluations"]),
    },
    "/v1/experiments": {
        "post": op("createExperiment", "an A/B experiment: arms (model versions) with weights",
                   ok(ref("Experiment")), [IDEM], body("ExperimentCreate"), ["experiments"]),
        "get": op("listExperiments", "the team's experiments, newest first",
                  ok(ref("ExperimentList")), PAGE, tags=["experiments"]),
    },
    "/v1/experiments/{id}": {
        "get": op("getExperiment", "one experiment", ok(ref("Experiment")), [XP_ID],
                  tags=["experiments"]),
    },
    "/v1/experiments/{id}/start": {
        "post": op("startExperiment", "start (draft) or resume (paused) an experiment",
                   ok(ref("Experiment")), [XP_ID, IDEM], body("Empty", required=False),
                   ["experiments"]),
    },
    "/v1/experiments/{id}/pause": {
        "post": op("pauseExperiment", "pause a running experiment", ok(ref("Experiment")),
                   [XP_ID, IDEM], body("Empty", required=False), ["experiments"]),
    },
    "/v1/experiments/{id}/stop": {
        "post": op("stopExperiment", "stop an experiment for good", ok(ref("Experiment")),
                   [XP_ID, IDEM], body("ExperimentStop", required=False), ["experiments"]),
    },
    "/v1/experiments/{id}/assignment": {
        "get": op("getAssignment", "the arm a user (sticky) or a request is assigned "
                  "(common/base/include/ft/experiment.h)", ok(ref("Assignment")),
                  [XP_ID, {"name": "user", "in": "query", "required": False,
                           "schema": {"type": S, "maxLength": 512}},
                   {"name": "request", "in": "query", "required": False,
                    "schema": {"type": S, "maxLength": 512}}], tags=["experiments"]),
    },
    "/v1/experiments/{id}/results": {
        "get": op("getExperimentResults", "what the scheduler's leader last computed: ratings, "
                  "win rates with bootstrap intervals, the win matrix, decisions, traffic, "
                  "feedback (docs/evaluation.md)", ok(ref("ExperimentResults")), [XP_ID],
                  tags=["experiments"]),
    },
    "/v1/experiments/{id}/judgments": {
        "post": op("createJudgment", "a person's pairwise judgment", ok(ref("Judgment")),
                   [XP_ID, IDEM], body("JudgmentCreate"), ["experiments"]),
        "get": op("listJudgments", "an experiment's judgments, newest first",
                  ok(ref("JudgmentList")), [XP_ID] + PAGE, tags=["experiments"]),
    },
    "/v1/experiments/{id}/judge": {
        "post": op("createLlmJudgment", "ask the experiment's LLM judge, in both orders "
                   "(pending until ft-scheduler's judge thread has)",
                   accepted(ref("Judgment"), "the judgment, pending"), [XP_ID, IDEM],
                   body("JudgeRequest"), ["experiments"]),
    },
    "/v1/experiments/{id}/replays": {
        "post": op("createReplay", "send a chat JSONL file's prompts to every active arm on the "
                   "experiment's endpoint (greedy); with an LLM judge, one pending judgment per "
                   "row per arm against the control (docs/evaluation.md \"Replays\")",
                   accepted(ref("Replay"), "the replay, queued"), [XP_ID, IDEM],
                   body("ReplayCreate"), ["experiments"]),
        "get": op("listReplays", "an experiment's replays, newest first",
                  ok(ref("ReplayList")), [XP_ID] + PAGE, tags=["experiments"]),
    },
    "/v1/experiments/{id}/replays/{replay}": {
        "get": op("getReplay", "a replay: status, rows sent, answers per arm, judgments made",
                  ok(ref("Replay")),
                  [XP_ID, path_param("replay", "replay id", "rpl"),
                   {"name": "rows", "in": "query", "required": False,
                    "schema": {"type": S, "enum": ["true", "false"]},
                    "description": "true: every row's prompt and answers"}],
                  tags=["experiments"]),
    },
    "/v1/feedback": {
        "post": op("createFeedback", "feedback on an answer (request log id): thumbs, resolved, "
                   "escalated", ok(ref("Feedback")), [IDEM], body("FeedbackCreate"),
                   ["experiments"]),
    },
    "/v1/feedback/{id}": {
        "get": op("getFeedback", "the feedback on an answer", ok(ref("Feedback")),
                  [{"name": "id", "in": "path", "required": True, "description": "response id",
                    "schema": {"type": S, "pattern": "^[A-Za-z0-9._:-]{1,128}$"}}],
                  tags=["experiments"]),
    },
    "/v1/drift": {
        "get": op("listDriftMonitors", "the team's drift monitors", ok(ref("DriftMonitorList")),
                  tags=["drift"]),
    },
    "/v1/drift/{id}": {
        "post": op("setDriftMonitor", "monitor a deployment's drift, or change the settings",
                   ok(ref("DriftMonitor")), [DEP_ID, IDEM], body("DriftSet", required=False),
                   ["drift"]),
        "get": op("getDriftMonitor", "a deployment's drift state, reference and latest windows",
                  ok(ref("DriftMonitor")), [DEP_ID], tags=["drift"]),
        "delete": op("deleteDriftMonitor", "stop monitoring a deployment",
                     ok(ref("DriftDeleted")), [DEP_ID], tags=["drift"]),
    },
    "/v1/drift/{id}/windows": {
        "get": op("listDriftWindows", "a deployment's drift windows, newest first",
                  ok(ref("DriftWindowList")),
                  [DEP_ID, {"name": "granularity", "in": "query", "required": False,
                            "schema": {"type": S, "enum": ["hour", "day"], "default": "hour"}},
                   {"name": "limit", "in": "query", "required": False,
                    "schema": {"type": I, "minimum": 1, "maximum": 1000, "default": 48}},
                   {"name": "before", "in": "query", "required": False,
                    "description": "windows starting before this time (unix seconds)",
                    "schema": {"type": I, "minimum": 0}}],
                  tags=["drift"]),
    },
}

doc = {
    "openapi": "3.1.0",
    "info": {"title": "ftplat API", "version": "0.1.0",
             "description": "OpenAI-compatible files, fine-tuning jobs and models, plus datasets, base "
                            "models, the model registry (versions, aliases, exports, artifacts), endpoints "
                            "and deployments, offline evaluations, A/B experiments, drift monitors, teams, "
                            "keys, webhooks and the audit log. See docs/api.md, docs/registry.md, "
                            "docs/deployments.md and docs/evaluation.md."},
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
    import re
    text = json.dumps(doc, indent=1)
    # 1e-06 is a float in JSON and YAML 1.2 but a string to YAML 1.1 readers
    # (PyYAML): write exponents with a decimal point, which both read alike
    text = re.sub(r'(?<=[ :\[,])(-?\d+)e([-+]?\d+)', r'\1.0e\2', text)
    return HEADER + text + "\n"


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--check":
        sys.exit(0 if OUT.read_text() == render() else 1)
    OUT.write_text(render())
