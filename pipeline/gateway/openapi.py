"""The OpenAPI 3.1 description the gateway serves at /openapi.json."""

from __future__ import annotations

from typing import Any

_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "problems": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "index": {"type": "integer"},
                            "field": {"type": ["string", "null"]},
                            "reason": {"type": "string"},
                        },
                    },
                },
            },
            "required": ["code", "message"],
        }
    },
}


def _answer(description: str, schema: str = "Error", headers: tuple[str, ...] = ()) -> dict:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }
    if headers:
        out["headers"] = {h: {"schema": {"type": "string"}} for h in headers}
    return out


def openapi_spec(streams: list[str]) -> dict[str, Any]:
    limited = ("RateLimit-Policy", "RateLimit")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "inferstream gateway",
            "version": "1",
            "description": "Submit inference requests to a stream and poll their results by id.",
        },
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": _ERROR,
                "Submitted": {
                    "type": "object",
                    "properties": {
                        "stream": {"type": "string"},
                        "model_version": {"type": "string"},
                        "degraded": {"type": "boolean"},
                        "requests": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "request_id": {"type": "string"},
                                    "status": {"enum": ["pending", "done"]},
                                    "status_url": {"type": "string"},
                                    "served_from": {"enum": ["cache"]},
                                    "result": {"type": "object"},
                                },
                                "required": ["request_id", "status", "status_url"],
                            },
                        },
                    },
                },
                "Status": {
                    "type": "object",
                    "properties": {
                        "request_id": {"type": "string"},
                        "status": {"enum": ["pending", "done", "failed", "unknown"]},
                        "stream": {"type": "string"},
                        "result": {"type": "object"},
                        "served_from": {"enum": ["model", "cache"]},
                        "reason": {"type": "string", "description": "dead-letter reason"},
                        "detail": {"type": "string"},
                        "retry_after_ms": {"type": "integer"},
                    },
                    "required": ["request_id", "status"],
                },
            },
        },
        "security": [{"apiKey": []}],
        "paths": {
            "/v1/streams/{stream}/requests": {
                "post": {
                    "summary": "Submit one request (an object) or several (an array)",
                    "parameters": [
                        {
                            "name": "stream",
                            "in": "path",
                            "required": True,
                            "schema": {"enum": streams},
                        },
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string", "maxLength": 200},
                        },
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"type": "object"},
                                        {"type": "array", "items": {"type": "object"}},
                                    ],
                                    "description": "fields of the stream's request schema",
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _answer(
                            "every request answered from the result cache", "Submitted", limited
                        ),
                        "202": _answer(
                            "accepted; poll each status_url", "Submitted", (*limited, "Retry-After")
                        ),
                        "400": _answer("invalid requests, with per-field reasons"),
                        "401": _answer("no, an invalid or a revoked API key"),
                        "403": _answer("the API key may not use this stream"),
                        "404": _answer("unknown stream"),
                        "409": _answer(
                            "the Idempotency-Key is still being processed, or a request_id is"
                            " held by another tenant (request-id-taken)"
                        ),
                        "413": _answer("body or request count over the limit"),
                        "415": _answer("not application/json"),
                        "422": _answer("the Idempotency-Key was used with another body"),
                        "429": _answer(
                            "rate limit or cost budget reached", "Error", (*limited, "Retry-After")
                        ),
                        "503": _answer("Kafka or Redis unavailable", "Error", ("Retry-After",)),
                    },
                }
            },
            "/v1/requests/{request_id}": {
                "get": {
                    "summary": "A request's status and result",
                    "parameters": [
                        {
                            "name": "request_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "wait",
                            "in": "query",
                            "required": False,
                            "description": "long-poll up to this many seconds while pending",
                            "schema": {"type": "number", "minimum": 0},
                        },
                    ],
                    "responses": {
                        "200": _answer("pending, done or failed", "Status", ("Retry-After",)),
                        "401": _answer("no, an invalid or a revoked API key"),
                        "404": _answer(
                            "unknown (never submitted, another tenant's, or expired)", "Status"
                        ),
                        "503": _answer("Redis unavailable", "Error", ("Retry-After",)),
                    },
                }
            },
            "/health": {
                "get": {
                    "summary": "the process is alive",
                    "security": [],
                    "responses": {"200": {"description": "alive"}},
                }
            },
            "/ready": {
                "get": {
                    "summary": "Redis up, Kafka breaker not open, index assigned",
                    "security": [],
                    "responses": {
                        "200": {"description": "ready"},
                        "503": {"description": "not ready"},
                    },
                }
            },
        },
    }
