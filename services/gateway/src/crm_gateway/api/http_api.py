"""The gateway's JSON/HTTP API: the same routes as gRPC, as ``POST /v1/<Service>/<Method>``.

Bodies are the request message in the proto3 JSON mapping; replies likewise (server streams as
newline-delimited JSON, client streams take a JSON array). Errors are
``{"code", "message", "details"}`` with the HTTP status of the gRPC code. Besides the API:
``/openapi.json``, the dashboard under ``/dashboard``, ``/healthz`` and ``/readyz``.

Operations that answer a file (``GetQuoteDocument``: see
:data:`crm_gateway.routes.DOCUMENT_MEDIA_TYPES`) also answer with the file itself, as a
download (``Content-Disposition: attachment``): to ``GET /v1/<Service>/<Method>?<field>=<value>``
(the request's fields as query parameters), and to a POST whose ``Accept`` names the file's
media type. So ``curl -H "Authorization: Bearer $T" -OJ
"$GATEWAY/v1/SalesService/GetQuoteDocument?id=$QUOTE"`` saves the quote's PDF.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import Message

from crm_gateway.dispatch import Dispatcher, GatewayError
from crm_gateway.routes import BY_HTTP_PATH, Route

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"

HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 412,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


def error_response(error: GatewayError, status: int | None = None) -> web.Response:
    """The JSON rendering of a failed call."""
    details: list[Any] = []
    parsed = error.status()
    if parsed is not None:
        details = [json_format.MessageToDict(item) for item in parsed.details]
    body = {"code": error.code.name, "message": error.message, "details": details}
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
    return web.json_response(
        body, status=status or HTTP_STATUS.get(error.code, 500), headers=headers
    )


def _plain_error(status: int, code: grpc.StatusCode, message: str) -> web.Response:
    return error_response(GatewayError(code, message), status)


def _parse(route: Route, payload: Any, where: str = "") -> bytes:
    if not isinstance(payload, dict):
        raise GatewayError.invalid(
            "the body must be a JSON object", where or "body", "expected a JSON object"
        )
    message: Message = route.request_type()
    try:
        json_format.ParseDict(payload, message)
    except (json_format.ParseError, ValueError, TypeError, ArithmeticError, RecursionError) as exc:
        raise GatewayError.invalid(
            f"the body is not a valid {message.DESCRIPTOR.name}", where or "body", str(exc)
        ) from None
    return bytes(message.SerializeToString())


def _to_json(route: Route, reply: bytes) -> dict[str, Any]:
    message: Message = route.response_type()
    message.ParseFromString(reply)
    return json_format.MessageToDict(message)


class HttpApi:
    """The aiohttp application of the gateway."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        max_request_bytes: int,
        openapi: Callable[[], dict[str, Any]],
        readiness: Callable[[], tuple[bool, dict[str, Any]]],
    ) -> None:
        self.dispatcher = dispatcher
        self.openapi = openapi
        self.readiness = readiness
        self._openapi_cache: bytes | None = None
        app = web.Application(client_max_size=max_request_bytes, middlewares=[self._errors])
        app.router.add_post("/v1/{service}/{method}", self.call)
        app.router.add_get("/v1/{service}/{method}", self.download)
        app.router.add_get("/openapi.json", self.openapi_document)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/", self.root)
        app.router.add_get("/dashboard", self.dashboard)
        app.router.add_get("/dashboard/", self.dashboard)
        if (WEB_DIR / "static").is_dir():
            app.router.add_static("/dashboard/static", WEB_DIR / "static")
        self.app = app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Every error as JSON, including aiohttp's own (404, 405, 413) and surprises (500)."""
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except GatewayError as error:
            return error_response(error)
        except web.HTTPRequestEntityTooLarge:
            return _plain_error(
                413, grpc.StatusCode.RESOURCE_EXHAUSTED, "the request body is too large"
            )
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = {404: grpc.StatusCode.NOT_FOUND, 405: grpc.StatusCode.UNIMPLEMENTED}.get(
                exc.status, grpc.StatusCode.INVALID_ARGUMENT
            )
            return _plain_error(exc.status, code, exc.reason)
        except Exception:
            log.exception("unexpected error serving %s %s", request.method, request.path)
            return _plain_error(500, grpc.StatusCode.INTERNAL, "internal error")

    async def call(self, request: web.Request) -> web.StreamResponse:
        """``POST /v1/<Service>/<Method>``."""
        route = BY_HTTP_PATH.get(request.path)
        if route is None:
            raise GatewayError(grpc.StatusCode.NOT_FOUND, f"no operation at {request.path}")
        principal = self.dispatcher.admit(
            route, request.headers.get("Authorization"), request.headers.get("X-API-Key")
        )
        if request.content_type not in ("application/json", "") and request.can_read_body:
            return _plain_error(
                415, grpc.StatusCode.INVALID_ARGUMENT, "send the body as application/json"
            )
        raw = await request.read()
        try:
            payload: Any = json.loads(raw) if raw.strip() else {}
        except (ValueError, RecursionError) as exc:
            raise GatewayError.invalid("the body is not JSON", "body", str(exc)) from None
        remaining = _timeout_header(request)
        if route.client_streaming:
            if not isinstance(payload, list):
                raise GatewayError.invalid(
                    "a streaming operation takes a JSON array of requests", "body", "not an array"
                )
            parts = [_parse(route, item, f"[{i}]") for i, item in enumerate(payload)]
            reply = await self.dispatcher.client_stream(
                route, principal, _iterate(parts), remaining
            )
            return web.json_response(_to_json(route, reply))
        body = _parse(route, payload)
        if route.server_streaming:
            return await self._stream(request, route, principal, body, remaining)
        reply = await self.dispatcher.unary(route, principal, body, remaining)
        if route.document_media_type and _accepts(request, route.document_media_type):
            return _file_response(route, reply)
        return web.json_response(_to_json(route, reply))

    async def download(self, request: web.Request) -> web.StreamResponse:
        """``GET /v1/<Service>/<Method>?field=value``: the file an operation answers with."""
        route = BY_HTTP_PATH.get(request.path)
        if route is None:
            raise GatewayError(grpc.StatusCode.NOT_FOUND, f"no operation at {request.path}")
        if not route.document_media_type:
            raise web.HTTPMethodNotAllowed("GET", ["POST"])
        principal = self.dispatcher.admit(
            route, request.headers.get("Authorization"), request.headers.get("X-API-Key")
        )
        payload: dict[str, Any] = {}
        for key in request.query:
            values = request.query.getall(key)
            payload[key] = values[0] if len(values) == 1 else values
        body = _parse(route, payload, "query")
        reply = await self.dispatcher.unary(route, principal, body, _timeout_header(request))
        return _file_response(route, reply)

    async def _stream(
        self, request: web.Request, route: Route, principal: Any, body: bytes, remaining: Any
    ) -> web.StreamResponse:
        """Newline-delimited JSON, one reply per line, flushed as each arrives."""
        replies = self.dispatcher.server_stream(route, principal, body, remaining)
        try:
            first = await anext(replies)
        except StopAsyncIteration:
            first = None
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        try:
            if first is not None:
                await response.write(_line(route, first))
                async for reply in replies:
                    await response.write(_line(route, reply))
        except GatewayError as error:  # after the headers: the last line carries the error
            line = {"error": {"code": error.code.name, "message": error.message}}
            await response.write(json.dumps(line).encode() + b"\n")
        except ConnectionResetError:
            pass  # the client went away
        finally:
            await replies.aclose()
        await response.write_eof()
        return response

    async def openapi_document(self, _: web.Request) -> web.Response:
        if self._openapi_cache is None:
            self._openapi_cache = json.dumps(self.openapi()).encode()
        return web.Response(body=self._openapi_cache, content_type="application/json")

    async def healthz(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, _: web.Request) -> web.Response:
        ready, detail = self.readiness()
        return web.json_response(
            {"status": "ready" if ready else "not ready", **detail}, status=200 if ready else 503
        )

    async def root(self, _: web.Request) -> web.Response:
        raise web.HTTPFound("/dashboard")

    async def dashboard(self, _: web.Request) -> web.StreamResponse:
        index = WEB_DIR / "index.html"
        if not index.exists():
            raise GatewayError(grpc.StatusCode.NOT_FOUND, "the dashboard is not installed")
        return web.FileResponse(index)


def _accepts(request: web.Request, media_type: str) -> bool:
    """Whether the request's ``Accept`` header names ``media_type`` itself."""
    accepted = request.headers.get("Accept", "")
    return any(part.split(";")[0].strip() == media_type for part in accepted.split(","))


_UNSAFE_FILE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _file_response(route: Route, reply: bytes) -> web.Response:
    """A document-answering operation's reply as the file itself, for download."""
    message: Any = route.response_type()
    message.ParseFromString(reply)
    media_type = str(message.content_type) or route.document_media_type
    name = _UNSAFE_FILE_NAME.sub("_", str(message.file_name)).strip("._") or "document"
    return web.Response(
        body=bytes(message.content),
        headers={
            "Content-Type": media_type,
            "Content-Disposition": f'attachment; filename="{name}"',
        },
    )


def _line(route: Route, reply: bytes) -> bytes:
    return json.dumps(_to_json(route, reply)).encode() + b"\n"


async def _iterate(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def _timeout_header(request: web.Request) -> float | None:
    """``X-Timeout-Seconds``: the caller's deadline for this call (like gRPC's)."""
    text = request.headers.get("X-Timeout-Seconds")
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise GatewayError.invalid(
            "X-Timeout-Seconds must be a number", "X-Timeout-Seconds", "not a number"
        ) from None
    if not 0 < value <= 3600:
        raise GatewayError.invalid(
            "X-Timeout-Seconds out of range", "X-Timeout-Seconds", "must be in (0, 3600]"
        )
    return value
