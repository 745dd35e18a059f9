"""The one place where ``PersonaeError`` becomes an HTTP status and an OpenAI-style body:
``{"error": {"message", "type", "param", "code"}}``, which the official SDKs parse."""

from __future__ import annotations

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from personae import errors
from personae.transports.gateway import NotReady

log = structlog.get_logger(__name__)

# Most specific first: the first matching class decides.
_STATUS: tuple[tuple[type[errors.PersonaeError], int, str], ...] = (
    (errors.PayloadTooLarge, 413, "invalid_request_error"),
    (errors.InvalidInput, 400, "invalid_request_error"),
    (errors.CharacterDefinitionError, 400, "invalid_request_error"),
    (errors.PermissionDenied, 403, "permission_error"),
    (errors.NotAuthenticated, 401, "authentication_error"),
    (errors.NotFound, 404, "not_found_error"),
    (errors.Conflict, 409, "invalid_request_error"),
    (errors.Overloaded, 503, "overloaded_error"),
    (errors.RateLimited, 429, "rate_limit_error"),
    (NotReady, 503, "overloaded_error"),
    (errors.BackendTimeout, 504, "backend_error"),
    (errors.BackendUnavailable, 503, "backend_error"),
    (errors.BackendError, 502, "backend_error"),
    (errors.StorageError, 503, "server_error"),
    (errors.CoordinationError, 503, "server_error"),
)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def status_of(exc: errors.PersonaeError) -> tuple[int, str]:
    for cls, status, kind in _STATUS:
        if isinstance(exc, cls):
            return status, kind
    return 500, "server_error"


def error_body(
    message: str, *, kind: str, code: str, param: str | None = None
) -> dict[str, dict[str, str | None]]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def body_for(exc: errors.PersonaeError) -> tuple[int, dict[str, dict[str, str | None]]]:
    status, kind = status_of(exc)
    param = "model" if isinstance(exc, errors.CharacterNotFound) else None
    message = exc.message if status < 500 or exc.code != "internal_error" else "internal error"
    return status, error_body(message, kind=kind, code=exc.code, param=param)


def install_error_handlers(app: FastAPI) -> None:
    async def personae_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, errors.PersonaeError)
        status, body = body_for(exc)
        headers = {}
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            headers["Retry-After"] = str(max(1, round(retry_after)))
        if status >= 500:
            log.warning("request failed", path=request.url.path, code=exc.code, status=status)
        return JSONResponse(body, status_code=status, headers=headers)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse(_validation_body(exc), status_code=400)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, str(exc.status_code))
        body = error_body(str(exc.detail), kind="invalid_request_error", code=code)
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", path=request.url.path)
        body = error_body("internal error", kind="server_error", code="internal_error")
        return JSONResponse(body, status_code=500)

    app.add_exception_handler(errors.PersonaeError, personae_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


def _validation_body(exc: RequestValidationError) -> dict[str, dict[str, str | None]]:
    problems = []
    param: str | None = None
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            return error_body(
                "the request body is not valid JSON", kind="invalid_request_error", code="json"
            )
        location = [str(p) for p in error.get("loc", ()) if p != "body"]
        where = ".".join(location) or "body"
        param = param or where
        problems.append(f"{where}: {error.get('msg', 'invalid')}")
    return error_body(
        "invalid request: " + "; ".join(problems),
        kind="invalid_request_error",
        code="invalid_request",
        param=param,
    )
