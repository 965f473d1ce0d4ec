"""What every JSON route shares: the error body, the error statuses the schema lists, and
`ApiRoute`, which answers a refused request in that one shape.

Errors are JSON: {"error": what to do, "errors": [details]}. A body that is not JSON is a
400; a body or parameter that does not fit the route's model is a 422 naming each field;
a RunError carries its own status.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic_core import to_json
from starlette.exceptions import HTTPException

from app.services.run_service import RunError


class ModelJSONResponse(JSONResponse):
    """JSON as pydantic writes it: any whole number (the NiceGUI app's default encoder
    refuses integers past 64 bits) and NaN or infinity as null (a diverged loss)."""

    def render(self, content: Any) -> bytes:
        return to_json(content, inf_nan_mode="null")


class ErrorBody(BaseModel):
    error: str
    errors: list[str] = []


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a route or router that may refuse with these statuses."""
    return {code: {"model": ErrorBody} for code in codes}


# Any route may meet these: the access checks (401, 403, 413, 415) and a bad request.
COMMON_ERRORS = error_responses(400, 401, 403, 413, 415, 422, 500, 503)


def error_response(status: int, message: str, errors: list[str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "errors": errors or []}, status_code=status)


def _field(loc: tuple[Any, ...]) -> str:
    """`("body", "config_name")` -> "config_name"; `("query", "after")` -> "after"."""
    parts = [str(p) for p in loc]
    if len(parts) > 1 and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def validation_response(exc: RequestValidationError) -> JSONResponse:
    problems = list(exc.errors())
    # Not JSON: a parse error, or a body FastAPI left as bytes (sent without a JSON type).
    unparsed = isinstance(exc.body, bytes | bytearray)
    if unparsed or any(p.get("type") == "json_invalid" for p in problems):
        return error_response(
            400, "The body must be JSON (a JSON object, sent as application/json)."
        )
    details = [f"{_field(tuple(p.get('loc', ())))}: {p.get('msg', 'not valid')}" for p in problems]
    return error_response(
        422, "The request does not fit this route: " + "; ".join(details), details
    )


_UNREADABLE_BODY = "There was an error parsing the body"  # FastAPI's, for any failed read


def _refusal(exc: Exception) -> Response | None:
    if isinstance(exc, RunError):
        return JSONResponse(exc.payload(), status_code=exc.status)
    if isinstance(exc, RequestValidationError):
        return validation_response(exc)
    if isinstance(exc, HTTPException) and exc.status_code < 500:
        if exc.detail == _UNREADABLE_BODY:
            cause = exc.__cause__
            if cause is not None and not isinstance(cause, (ValueError, RecursionError)):
                # Not the JSON parser: a middleware stopped the body (the size limit), and
                # answers itself.
                raise cause
            return error_response(400, "The body must be JSON, nested at most a few hundred deep.")
        return error_response(exc.status_code, str(exc.detail))
    return None


class ApiRoute(APIRoute):
    """Answers RunError, a bad body or parameter, and HTTPException with ErrorBody, on its
    own routes only (the app's other handlers, e.g. NiceGUI's pages, stay as they are)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                refusal = _refusal(exc)
                if refusal is None:
                    raise
                return refusal

        return answer
