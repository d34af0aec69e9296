"""The OpenAPI document as the service serves it.

Every error this service sends is `application/problem+json` (service/api/errors.py),
the request-validation 422 included; FastAPI's generated document says
`application/json` with its own `HTTPValidationError` shape for that 422, so a client
generated from it would mis-parse every validation error. The document is corrected
once, when first asked for.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from service.api.schemas.goals import Problem
from service.domain.inputs import drop_null

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_FASTAPI_ONLY = ("HTTPValidationError", "ValidationError")


def problem_responses(document: dict[str, Any]) -> dict[str, Any]:
    """Every 4xx and 5xx response of every operation as `application/problem+json`
    with the Problem schema, the refusals every operation of a kind can meet before its
    route runs added (see _refusals), and FastAPI's unused validation schemas dropped."""
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "header":  # absent or a string, never JSON null
                    drop_null(parameter.get("schema", {}))
            for status, description in _refusals(path, operation):
                responses.setdefault(status, {"description": description})
            for status, response in responses.items():
                if str(status)[:1] in ("4", "5"):
                    response["content"] = {"application/problem+json": {"schema": PROBLEM_REF}}
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault(
        "Problem", Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    )
    for name in _FASTAPI_ONLY:
        schemas.pop(name, None)
    return document


def _refusals(path: str, operation: dict[str, Any]) -> list[tuple[str, str]]:
    """What the service's own layers answer for an operation whatever its route says:
    the key check (any /v1 operation, when keys are set), the JSON parser and the body
    limit (an operation with a body), the If-Match parser (an operation that takes it)."""
    found = []
    if path.startswith("/v1/"):
        found.append(("401", "An API key is required (when GOALSTORE_API_KEYS is set)."))
    takes_if_match = any(
        parameter.get("in") == "header" and parameter.get("name") == "If-Match"
        for parameter in operation.get("parameters", [])
    )
    if "requestBody" in operation or takes_if_match:
        found.append(("400", "Malformed JSON, or a malformed If-Match."))
    if "requestBody" in operation:
        found.append(("413", "The body is over GOALSTORE_MAX_BODY_BYTES."))
    return found


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title, version=app.version, summary=app.summary,
                description=app.description, routes=app.routes,
            )  # fmt: skip
            app.openapi_schema = problem_responses(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
