"""Writes openapi.json beside this file: the OpenAPI 3.1 document of alertpub's /api/v1 routes,
which the server serves at /api/v1/openapi.json and tests/e2e/openapi.rs checks with
schemathesis against a live server. Edit here, run `python3 openapi.py`, commit both."""
import os
import json
def ref(name): return {"$ref": f"#/components/schemas/{name}"}
def jr(schema, desc): return {"description": desc, "content": {"application/json": {"schema": schema}}}
def err(desc): return jr(ref("Error"), desc)
E400 = err("The request is invalid: its JSON, schema, query or path (`error.kind` says which).")
E401 = err("A bearer token is needed (with `server.auth`).")
E404 = err("No such resource.")
E405 = err("The method is not allowed on this path.")
E413 = err("The body is over `server.max_body_bytes`, or has too many alerts.")
E415 = err("The body is not `application/json`.")
E503 = err("The queue cannot take it now (full, or its storage failed); nothing of the request is lost.")
def common(extra):
    r = {"400": E400, "401": E401, "405": E405}
    r.update(extra)
    return r
def body(schema, required=True):
    return {"required": required, "content": {"application/json": {"schema": schema}}}
labels = {"type": "object", "minProperties": 1, "maxProperties": 128,
    "propertyNames": {"minLength": 1, "maxLength": 256},
    "additionalProperties": {"type": "string", "maxLength": 16384}}
alert_schema = {"type": "object", "required": ["labels"], "properties": {
    "labels": labels,
    "annotations": {"type": "object", "maxProperties": 128, "propertyNames": {"minLength": 1, "maxLength": 256}, "additionalProperties": {"type": "string", "maxLength": 16384}},
    "startsAt": {"type": "string", "format": "date-time"},
    "endsAt": {"type": "string", "format": "date-time"},
    "generatorURL": {"type": "string"}}}
TARGET_NAME_P = {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"}
publish_body = {"type": "object", "required": ["alert"], "additionalProperties": False, "properties": {
    "alert": ref("Alert"),
    "targets": {"type": "array", "minItems": 1, "items": TARGET_NAME_P},
    "options": {"type": "object", "additionalProperties": False, "description": "Overrides of the publishing defaults.", "properties": {
        "timeout_ms": {"type": "integer", "minimum": 1000, "maximum": 86400000, "description": "The whole publish's deadline. The server takes any value from 1 ms; one under a second leaves a busy target too little time, and its calls fail as timeouts (a 502 when all fail)."},
        "per_target_timeout_ms": {"type": "integer", "minimum": 1000, "maximum": 86400000, "description": "One call's deadline; as timeout_ms."},
        "max_concurrent": {"type": "integer", "minimum": 1, "maximum": 1000},
        "health_strategy": {"type": "string", "enum": ["skip_unhealthy", "skip_unhealthy_and_degraded", "publish_to_all"]},
        "respect_circuit_breakers": {"type": "boolean"},
        "enqueue_failed": {"type": "boolean"}}}}}
publish_responses = common({
    "200": jr(ref("PublishResult"), "Every target's result (some may have failed: `is_partial_success`)."),
    "404": err("A named target is unknown."),
    "413": E413, "415": E415,
    "502": jr(ref("PublishResult"), "Every target failed; the body has each one's result."),
    "503": err("No target is enabled (or healthy, for /healthy)."),
    "504": jr(ref("PublishResult"), "The overall timeout passed; the body has what finished."),
})
name_param = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
id_param = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
def q(name, schema, desc): return {"name": name, "in": "query", "required": False, "schema": schema, "description": desc}
KINDS = [
    "pagerduty", "slack", "rootly", "webhook", "alertmanager",
    "msteams", "opsgenie", "incidentio", "email", "discord", "telegram",
]
TARGET_NAME = {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"}
dlq_query = [q("target", TARGET_NAME, "Only this target's entries."),
             q("kind", {"type": "string", "enum": KINDS}, "Only this kind of target's."),
             q("since", {"type": "string", "format": "date-time"}, "Dead at or after (RFC 3339)."),
             q("until", {"type": "string", "format": "date-time"}, "Dead before (RFC 3339)."),
             q("cursor", {"type": "string", "minLength": 1}, "The `next_cursor` of the previous page."),
             q("limit", {"type": "integer", "minimum": 1}, "Entries per page.")]
paths = {
 "/api/v1/alerts/alertmanager": {"post": {"summary": "Alertmanager's webhook receiver: a notification's alerts are ingested.", "operationId": "postWebhook",
    "requestBody": body({"type": "object", "required": ["alerts"], "properties": {"version": {"description": "Alertmanager's `\"4\"`; a string other than \"4\" is refused, any other value ignored."}, "alerts": {"type": "array", "items": ref("Alert")}}}),
    "responses": common({"200": jr(ref("Ingested"), "The jobs are committed."), "413": E413, "415": E415, "503": E503})}},
 "/api/v1/publish/parallel": {"post": {"summary": "Publishes one alert now to the named targets, one attempt each.", "operationId": "publishNamed",
    "requestBody": body(publish_body), "responses": publish_responses}},
 "/api/v1/publish/parallel/all": {"post": {"summary": "Publishes one alert now to every enabled target whose filter matches.", "operationId": "publishAll",
    "requestBody": body(publish_body), "responses": publish_responses}},
 "/api/v1/publish/parallel/healthy": {"post": {"summary": "Publishes one alert now to every healthy target whose filter matches.", "operationId": "publishHealthy",
    "requestBody": body(publish_body), "responses": publish_responses}},
 "/api/v1/publish/parallel/status": {"get": {"summary": "The synchronous API's totals, and each target's.", "operationId": "publishStatus",
    "responses": common({"200": jr(ref("PublishStatus"), "The figures since the start or the last reset.")})}},
 "/api/v1/publish/parallel/status/reset": {"post": {"summary": "Starts the synchronous API's figures again from zero.", "operationId": "resetPublishStatus",
    "responses": common({"200": jr(ref("PublishStatus"), "The figures, now zero.")})}},
 "/api/v1/targets": {"get": {"summary": "Every target, with its health and breaker; no secret, URLs as scheme://host:port/….", "operationId": "listTargets",
    "responses": common({"200": jr({"type": "object", "required": ["targets", "generation"], "properties": {"targets": {"type": "array", "items": ref("Target")}, "generation": {"type": "integer"}}}, "The targets in force.")})}},
 "/api/v1/targets/refresh": {"post": {"summary": "Reloads the config file (as POST /-/reload).", "operationId": "refreshTargets",
    "responses": common({"200": jr(ref("Reloaded"), "Reloaded."), "422": err("The file is invalid; the previous targets stay.")})}},
 "/api/v1/targets/{name}": {"get": {"summary": "One target.", "operationId": "getTarget", "parameters": [name_param],
    "responses": common({"200": jr(ref("Target"), "The target."), "404": E404})}},
 "/api/v1/targets/{name}/health": {"get": {"summary": "One target's health.", "operationId": "getTargetHealth", "parameters": [name_param],
    "responses": common({"200": jr(ref("Health"), "Its health."), "404": E404})}},
 "/api/v1/targets/{name}/health/check": {"post": {"summary": "Probes one target now.", "operationId": "checkTargetHealth", "parameters": [name_param],
    "responses": common({"200": jr(ref("Health"), "Its health after the probe."), "404": E404, "409": err("The target has no health probe.")})}},
 "/api/v1/queue": {"get": {"summary": "Live jobs by priority and target, each lane's state, and the DLQ's size.", "operationId": "queueStatus",
    "responses": common({"200": jr(ref("Queue"), "The queue."), "503": E503})}},
 "/api/v1/dlq": {"get": {"summary": "Dead letters, oldest first, a page at a time.", "operationId": "listDeadLetters", "parameters": dlq_query,
    "responses": common({"200": jr({"type": "object", "required": ["entries"], "properties": {"entries": {"type": "array", "items": {"type": "object"}}, "next_cursor": {"type": ["string", "null"]}}}, "A page."), "503": E503})}},
 "/api/v1/dlq/replay": {"post": {"summary": "Replays every entry a filter matches; the whole DLQ needs `all: true` and no filter. (The same filter may be given in the query string instead of the body, not in both.)", "operationId": "replayDeadLetters",
    "requestBody": body({"oneOf": [
        {"type": "object", "additionalProperties": False, "minProperties": 1, "anyOf": [{"required": ["target"]}, {"required": ["kind"]}, {"required": ["since"]}, {"required": ["until"]}],
         "properties": {"target": TARGET_NAME, "kind": {"type": "string", "enum": KINDS}, "since": {"type": "string", "format": "date-time"}, "until": {"type": "string", "format": "date-time"}, "limit": {"type": "integer", "minimum": 0}}},
        {"type": "object", "additionalProperties": False, "required": ["all"], "properties": {"all": {"const": True}, "limit": {"type": "integer", "minimum": 0}}}]}),
    "responses": common({"200": jr({"type": "object", "required": ["replayed", "superseded", "gone"], "properties": {"replayed": {"type": "integer"}, "superseded": {"type": "integer"}, "gone": {"type": "integer"}, "replayed_ids": {"type": "array", "items": {"type": "string"}}, "superseded_ids": {"type": "array", "items": {"type": "string"}}}}, "What was replayed."), "413": E413, "415": E415, "503": E503})}},
 "/api/v1/dlq/{id}": {"delete": {"summary": "Deletes one dead letter.", "operationId": "purgeDeadLetter", "parameters": [id_param],
    "responses": common({"200": jr({"type": "object", "required": ["status", "id"], "properties": {"status": {"type": "string"}, "id": {"type": "string"}}}, "Deleted."), "404": E404, "503": E503})}},
 "/api/v1/dlq/{id}/replay": {"post": {"summary": "Replays one dead letter: it is queued again.", "operationId": "replayDeadLetter", "parameters": [id_param],
    "responses": common({"200": jr({"type": "object", "required": ["status", "id", "job"], "properties": {"status": {"type": "string"}, "id": {"type": "string"}, "job": {"type": "integer"}}}, "Queued again."), "404": E404, "409": err("A newer state of the alert superseded it."), "503": E503})}},
 "/api/v1/deliveries": {"get": {"summary": "The delivery history: every attempt, newest first, a page at a time.", "operationId": "listDeliveries",
    "parameters": [q("fingerprint", {"type": "string", "pattern": "^[0-9a-fA-F]{16}$"}, "Only this alert's (16 hex digits)."), q("target", {"type": "string", "minLength": 1}, "Only this target's."),
                   q("matcher", {"type": "string"}, "A label matcher (`name=\"value\"`, `=~`, `!=`, `!~`); may repeat."),
                   q("since", {"type": "string", "format": "date-time"}, "Attempts that ended at or after (RFC 3339)."),
                   q("cursor", {"type": "integer", "minimum": 0}, "The `next_cursor` of the previous page."), q("limit", {"type": "integer", "minimum": 1}, "Entries per page (at most 1000).")],
    "responses": common({"200": jr(ref("DeliveryPage"), "A page."), "503": E503})}},
 "/api/v1/alerts/{fingerprint}": {"get": {"summary": "One alert: its labels, its notification-log state per target, its latest attempts.", "operationId": "getAlert",
    "parameters": [{"name": "fingerprint", "in": "path", "required": True, "schema": {"type": "string", "pattern": "^[0-9a-fA-F]{16}$"}}],
    "responses": common({"200": jr(ref("AlertView"), "The alert."), "404": E404, "503": E503})}},
 "/api/v1/openapi.json": {"get": {"summary": "This document.", "operationId": "openapi", "responses": {"200": jr({"type": "object"}, "The OpenAPI document.")}}},
}
nullable = lambda t: {"type": [t, "null"]}
schemas = {
 "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["kind", "message"], "properties": {"kind": {"type": "string"}, "message": {"type": "string"}}}}},
 "Alert": alert_schema,
 "Ingested": {"type": "object", "required": ["status", "accepted", "jobs", "duplicates"], "properties": {"status": {"type": "string"}, "accepted": {"type": "integer"}, "jobs": {"type": "integer"}, "duplicates": {"type": "integer"}}},
 "PublishResult": {"type": "object", "required": ["results"], "properties": {"results": {"type": "array", "items": {"type": "object", "required": ["target_name", "outcome"], "properties": {"target_name": {"type": "string"}, "outcome": {"type": "string"}, "status_code": nullable("integer"), "duration_ms": {"type": "integer"}}}}, "success_count": {"type": "integer"}, "failure_count": {"type": "integer"}, "skipped_count": {"type": "integer"}, "is_partial_success": {"type": "boolean"}, "duration_ms": {"type": "integer"}}},
 "Percentiles": {"type": "object", "properties": {"p50": nullable("number"), "p90": nullable("number"), "p99": nullable("number"), "max": nullable("number")}},
 "PublishStatus": {"type": "object", "required": ["total", "success", "partial", "failure", "targets"], "properties": {"total": {"type": "integer"}, "success": {"type": "integer"}, "partial": {"type": "integer"}, "failure": {"type": "integer"}, "window": {"type": "integer"}, "latency_ms": ref("Percentiles"), "targets": {"type": "object", "additionalProperties": {"type": "object", "required": ["calls", "success", "failed"], "properties": {"calls": {"type": "integer"}, "success": {"type": "integer"}, "failed": {"type": "integer"}, "window": {"type": "integer"}, "latency_ms": ref("Percentiles")}}}}},
 "Health": {"type": "object", "required": ["target", "status"], "properties": {"target": {"type": "string"}, "status": {"type": "string", "enum": ["unknown", "healthy", "degraded", "unhealthy"]}}},
 "Target": {"type": "object", "required": ["name", "kind", "enabled", "health", "circuit"], "properties": {"name": {"type": "string"}, "kind": {"type": "string"}, "enabled": {"type": "boolean"}, "endpoint": nullable("string"), "filter": {"type": "array", "items": {"type": "string"}}, "in_flight_limit": {"type": "integer"}, "health": ref("Health"), "circuit": {"type": "object", "required": ["state"], "properties": {"state": {"type": "string"}}}}},
 "Reloaded": {"type": "object", "required": ["status", "generation", "targets"], "properties": {"status": {"type": "string"}, "generation": {"type": "integer"}, "targets": {"type": "integer"}, "warnings": {"type": "array", "items": {"type": "object", "properties": {"target": {"type": "string"}, "message": {"type": "string"}}}}}},
 "Queue": {"type": "object", "required": ["depth", "by_priority", "targets", "lanes", "dead_letters"], "properties": {"depth": {"type": "integer"}, "by_priority": {"type": "object", "additionalProperties": {"type": "integer"}}, "targets": {"type": "array", "items": {"type": "object"}}, "lanes": {"type": "array", "items": {"type": "object"}}, "dead_letters": {"type": "integer"}, "oldest_job_age_ms": nullable("integer")}},
 "Delivery": {"type": "object", "required": ["id", "at", "fingerprint", "labels", "target", "status", "attempt", "outcome", "latency_ms", "path"], "properties": {"id": {"type": "integer"}, "at": {"type": "string"}, "fingerprint": {"type": "string"}, "labels": {"type": "object", "additionalProperties": {"type": "string"}}, "target": {"type": "string"}, "status": {"type": "string", "enum": ["firing", "resolved"]}, "attempt": {"type": "integer"}, "outcome": {"type": "string", "enum": ["delivered", "failed"]}, "status_code": {"type": "integer"}, "error_kind": {"type": "string"}, "latency_ms": {"type": "integer"}, "path": {"type": "string", "enum": ["queue", "sync"]}}},
 "DeliveryPage": {"type": "object", "required": ["entries", "next_cursor"], "properties": {"entries": {"type": "array", "items": ref("Delivery")}, "next_cursor": nullable("integer")}},
 "AlertView": {"type": "object", "required": ["fingerprint", "targets", "deliveries"], "properties": {"fingerprint": {"type": "string"}, "labels": {"type": ["object", "null"], "additionalProperties": {"type": "string"}}, "targets": {"type": "array", "items": {"type": "object", "required": ["target", "status"], "properties": {"target": {"type": "string"}, "status": {"type": "string"}}}}, "deliveries": {"type": "array", "items": ref("Delivery")}}},
}
doc = {"openapi": "3.1.0",
 "info": {"title": "alertpub", "version": "1", "description": "alertpub's own API (/api/v1). Alertmanager's /api/v2/alerts and /api/v2/status are Alertmanager's; the operational endpoints (/metrics, /-/healthy, /-/ready, /-/reload) are in docs/operations.md. Errors are always `{\"error\": {\"kind\", \"message\"}}`."},
 "paths": paths, "components": {"schemas": schemas,
   "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "With `server.auth`: every write, and reads with `protect_reads`."}}}}
json.dump(doc, open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "openapi.json"), "w"), indent=1)
