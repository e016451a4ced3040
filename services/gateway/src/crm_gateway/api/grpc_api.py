"""The gateway's gRPC API: every route of the table, served by one generic handler.

Requests and replies stay bytes: the gateway reads only the call's metadata (credential and
deadline) and hands the bytes to the backend, so it adds no decode/encode per call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from crm_gateway.dispatch import Dispatcher, GatewayError
from crm_gateway.routes import BY_PATH, Route

Context = grpc.aio.ServicerContext[Any, Any]


def _credentials(context: Context) -> tuple[str | None, str | None]:
    authorization = api_key = None
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            authorization = value
        elif key == "x-api-key" and isinstance(value, str):
            api_key = value
    return authorization, api_key


async def _abort(context: Context, error: GatewayError) -> None:
    context.set_trailing_metadata(error.trailing_metadata())
    await context.abort(error.code, error.message)


class GatewayHandler(grpc.GenericRpcHandler):  # type: ignore[type-arg]
    """Routes ``/crm.gateway.v1.<Service>/<Method>`` to the dispatcher."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self._handlers = {path: self._handler(route) for path, route in BY_PATH.items()}

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        return self._handlers.get(handler_call_details.method)

    def _handler(self, route: Route) -> grpc.RpcMethodHandler[Any, Any]:
        dispatcher = self.dispatcher
        if route.client_streaming:

            async def stream_unary(requests: AsyncIterator[bytes], context: Context) -> bytes:
                try:
                    principal = dispatcher.admit(route, *_credentials(context))
                    return await dispatcher.client_stream(
                        route, principal, requests, context.time_remaining()
                    )
                except GatewayError as error:
                    await _abort(context, error)
                    raise AssertionError("unreachable") from None

            return grpc.stream_unary_rpc_method_handler(stream_unary)
        if route.server_streaming:

            async def unary_stream(request: bytes, context: Context) -> AsyncIterator[bytes]:
                try:
                    principal = dispatcher.admit(route, *_credentials(context))
                    async for reply in dispatcher.server_stream(
                        route, principal, request, context.time_remaining()
                    ):
                        yield reply
                except GatewayError as error:
                    await _abort(context, error)

            return grpc.unary_stream_rpc_method_handler(unary_stream)

        async def unary_unary(request: bytes, context: Context) -> bytes:
            try:
                principal = dispatcher.admit(route, *_credentials(context))
                return await dispatcher.unary(route, principal, request, context.time_remaining())
            except GatewayError as error:
                await _abort(context, error)
                raise AssertionError("unreachable") from None

        return grpc.unary_unary_rpc_method_handler(unary_unary)
