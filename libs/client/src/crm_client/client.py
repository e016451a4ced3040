"""Clients of the gateway: :class:`CrmClient` (blocking) and :class:`AsyncCrmClient` (asyncio).

Both hold one channel to the gateway and one stub per gateway service, as typed attributes::

    with CrmClient() as client:                      # CRM_GATEWAY / CRM_TOKEN / CRM_API_KEY
        caller = client.identity.GetCaller(gateway_pb2.GetCallerRequest())
        contact = client.contacts.GetContact(contacts_pb2.GetContactRequest(id="c-1")).contact

Every call made through the stubs carries the credential (``authorization: Bearer <jwt>`` or
``x-api-key``) and, unless the call gives its own ``timeout``, the client's default deadline.
Metadata passed to a call is sent too, and wins over the client's for the same key.

Failed unary calls raise :class:`crm_client.errors.CrmError` (code, message, field violations,
``retry_after``). Streaming calls (``StreamKpis``...) and futures raise ``grpc.RpcError`` (or,
for futures that had already failed when they were made, ``CrmError``, which is one too);
:func:`crm_client.errors.translate_errors` converts.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

import grpc
import grpc.aio

from crm.gateway.v1 import gateway_pb2_grpc
from crm.gateway.v1 import sales_pb2_grpc as gateway_sales_pb2_grpc
from crm_client.config import ClientConfig
from crm_client.errors import CrmError

ChannelOptions = Sequence[tuple[str, Any]]


def _merge_metadata(
    given: Any, extra: tuple[tuple[str, str], ...]
) -> list[tuple[str, str | bytes]]:
    """The call's own metadata, then ours for the keys it does not set."""
    pairs: list[tuple[str, str | bytes]] = [(str(k), v) for k, v in (given or ())]
    present = {key.lower() for key, _ in pairs}
    pairs.extend((key, value) for key, value in extra if key not in present)
    return pairs


class _SyncCallDetails(grpc.ClientCallDetails):
    """The details of an outgoing call, as the sync interceptor API wants them."""

    def __init__(
        self,
        method: str,
        timeout: float | None,
        metadata: Any,
        credentials: grpc.CallCredentials | None,
        wait_for_ready: bool | None,
        compression: grpc.Compression | None,
    ) -> None:
        self.method = method
        self.timeout = timeout
        self.metadata = metadata
        self.credentials = credentials
        self.wait_for_ready = wait_for_ready
        self.compression = compression


class _SyncInterceptor(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[type-arg]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.StreamStreamClientInterceptor,  # type: ignore[type-arg]
):
    """Adds the credential and the default deadline; raises CrmError for failed unary calls."""

    def __init__(self, metadata: tuple[tuple[str, str], ...], timeout: float | None) -> None:
        self._metadata = metadata
        self._timeout = timeout

    def _forward(self, details: Any) -> _SyncCallDetails:
        timeout = details.timeout if details.timeout is not None else self._timeout
        return _SyncCallDetails(
            details.method,
            timeout,
            tuple(_merge_metadata(details.metadata, self._metadata)),
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    @staticmethod
    def _raise_if_failed(outcome: Any) -> Any:
        # A blocking call's outcome is finished; so may be a future's (see the module doc).
        if outcome.done():
            error = outcome.exception()
            if isinstance(error, grpc.RpcError) and not isinstance(error, CrmError):
                raise CrmError.from_rpc_error(error) from error
        return outcome

    def intercept_unary_unary(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return self._raise_if_failed(continuation(self._forward(client_call_details), request))

    def intercept_unary_stream(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return continuation(self._forward(client_call_details), request)

    def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return self._raise_if_failed(
            continuation(self._forward(client_call_details), request_iterator)
        )

    def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return continuation(self._forward(client_call_details), request_iterator)


class _AsyncForwarding:
    """What the asyncio interceptors share: the credential and the default deadline.

    ``grpc.aio`` files an interceptor under the first of the four kinds it is an instance of
    (an ``if``/``elif`` chain), so each kind needs an object of its own.
    """

    def __init__(self, metadata: tuple[tuple[str, str], ...], timeout: float | None) -> None:
        self._metadata = metadata
        self._timeout = timeout

    def _forward(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        merged = _merge_metadata(details.metadata, self._metadata)
        return grpc.aio.ClientCallDetails(
            method=details.method,
            timeout=details.timeout if details.timeout is not None else self._timeout,
            metadata=grpc.aio.Metadata(*merged),
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
        )


class _AsyncUnaryUnary(_AsyncForwarding, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_unary(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        call = await continuation(self._forward(client_call_details), request)
        try:
            await call
        except grpc.aio.AioRpcError as error:
            raise CrmError.from_rpc_error(error) from error
        return call


class _AsyncUnaryStream(_AsyncForwarding, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_unary_stream(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(self._forward(client_call_details), request)


class _AsyncStreamUnary(_AsyncForwarding, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[type-arg]
    async def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        call = await continuation(self._forward(client_call_details), request_iterator)
        try:
            await call
        except grpc.aio.AioRpcError as error:
            raise CrmError.from_rpc_error(error) from error
        return call


class _AsyncStreamStream(_AsyncForwarding, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[type-arg]
    async def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(self._forward(client_call_details), request_iterator)


def _async_interceptors(metadata: tuple[tuple[str, str], ...], timeout: float | None) -> list[Any]:
    return [
        kind(metadata, timeout)
        for kind in (_AsyncUnaryUnary, _AsyncUnaryStream, _AsyncStreamUnary, _AsyncStreamStream)
    ]


def _channel_credentials(
    secure: bool, credentials: grpc.ChannelCredentials | None
) -> grpc.ChannelCredentials | None:
    if credentials is not None:
        return credentials
    return grpc.ssl_channel_credentials() if secure else None


class CrmClient:
    """A blocking client of the gateway: one channel, one stub per gateway service.

    Args:
        target: the gateway (``host:port`` or any gRPC target); default ``$CRM_GATEWAY``,
            else ``127.0.0.1:50050``.
        token: a JWT sent as ``authorization: Bearer <token>``; default ``$CRM_TOKEN``.
        api_key: an API key sent as ``x-api-key``; default ``$CRM_API_KEY``.
        timeout: the deadline of calls that give none, in seconds; default ``$CRM_TIMEOUT``,
            else 10. ``0`` means no deadline.
        secure: use TLS with the system's root certificates.
        credentials: TLS channel credentials of your own (implies ``secure``).
        options: further gRPC channel arguments.
        use_env: read the ``CRM_*`` environment variables (default ``True``).

    Attributes:
        contacts, tickets, config, social, surveys, metrics, customers, identity, sales: the
            stubs of the gateway's ``ContactsService``, ``TicketService``,
            ``ServiceDeskConfigService``, ``SocialListeningService``, ``SurveyService``,
            ``MetricsService``, ``CustomerService``, ``IdentityService``, ``SalesService``
            (pipelines, opportunities, leads, products, quotes).
        territories, orders, activities: the stubs of the gateway's ``TerritoryService``
            (territory rules), ``OrderService`` (orders, returns, costs, currencies) and
            ``ActivityService`` (calls, meetings, tasks, the follow-up rule);
        appointments, campaigns: ``AppointmentService`` (slots, bookings, .ics) and
            ``CampaignService`` (campaigns, costs, interactions).
        settings: the settled :class:`~crm_client.config.ClientConfig`.
        channel: the underlying (intercepted) gRPC channel.
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        token: str | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
        secure: bool = False,
        credentials: grpc.ChannelCredentials | None = None,
        options: ChannelOptions = (),
        use_env: bool = True,
    ) -> None:
        self.settings = ClientConfig.resolve(
            target, token=token, api_key=api_key, timeout=timeout, env=None if use_env else {}
        )
        tls = _channel_credentials(secure, credentials)
        base = (
            grpc.secure_channel(self.settings.target, tls, options=list(options))
            if tls is not None
            else grpc.insecure_channel(self.settings.target, options=list(options))
        )
        self._base_channel = base
        interceptor = _SyncInterceptor(self.settings.credential_metadata(), self.settings.timeout)
        self.channel: grpc.Channel = grpc.intercept_channel(base, interceptor)
        self.contacts = gateway_pb2_grpc.ContactsServiceStub(self.channel)
        self.tickets = gateway_pb2_grpc.TicketServiceStub(self.channel)
        self.config = gateway_pb2_grpc.ServiceDeskConfigServiceStub(self.channel)
        self.social = gateway_pb2_grpc.SocialListeningServiceStub(self.channel)
        self.surveys = gateway_pb2_grpc.SurveyServiceStub(self.channel)
        self.metrics = gateway_pb2_grpc.MetricsServiceStub(self.channel)
        self.customers = gateway_pb2_grpc.CustomerServiceStub(self.channel)
        self.identity = gateway_pb2_grpc.IdentityServiceStub(self.channel)
        self.sales = gateway_sales_pb2_grpc.SalesServiceStub(self.channel)
        self.territories = gateway_sales_pb2_grpc.TerritoryServiceStub(self.channel)
        self.orders = gateway_sales_pb2_grpc.OrderServiceStub(self.channel)
        self.activities = gateway_sales_pb2_grpc.ActivityServiceStub(self.channel)
        self.appointments = gateway_sales_pb2_grpc.AppointmentServiceStub(self.channel)
        self.campaigns = gateway_sales_pb2_grpc.CampaignServiceStub(self.channel)

    @property
    def target(self) -> str:
        """The gateway this client calls."""
        return self.settings.target

    def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        self._base_channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CrmClient(target={self.target!r}, credential={self.settings.credential_kind})"


class AsyncCrmClient:
    """The asyncio client of the gateway (``grpc.aio``), with the same shape as
    :class:`CrmClient`: make it inside a coroutine, ``await`` the stubs' unary calls, iterate
    streaming ones with ``async for``, and close it with ``await client.close()`` or
    ``async with``.

    Args and attributes: as :class:`CrmClient` (the stubs are the ``*AsyncStub`` types).
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        token: str | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
        secure: bool = False,
        credentials: grpc.ChannelCredentials | None = None,
        options: ChannelOptions = (),
        use_env: bool = True,
    ) -> None:
        self.settings = ClientConfig.resolve(
            target, token=token, api_key=api_key, timeout=timeout, env=None if use_env else {}
        )
        interceptors = _async_interceptors(
            self.settings.credential_metadata(), self.settings.timeout
        )
        tls = _channel_credentials(secure, credentials)
        self.channel: grpc.aio.Channel = (
            grpc.aio.secure_channel(
                self.settings.target, tls, options=list(options), interceptors=interceptors
            )
            if tls is not None
            else grpc.aio.insecure_channel(
                self.settings.target, options=list(options), interceptors=interceptors
            )
        )
        channel = self.channel
        # The *AsyncStub classes exist only in the type stubs (hence the annotations, never
        # evaluated): at runtime the plain stub classes, given an aio channel, make the
        # awaitable multi-callables.
        self.contacts: gateway_pb2_grpc.ContactsServiceAsyncStub = (
            gateway_pb2_grpc.ContactsServiceStub(channel)
        )
        self.tickets: gateway_pb2_grpc.TicketServiceAsyncStub = gateway_pb2_grpc.TicketServiceStub(
            channel
        )
        self.config: gateway_pb2_grpc.ServiceDeskConfigServiceAsyncStub = (
            gateway_pb2_grpc.ServiceDeskConfigServiceStub(channel)
        )
        self.social: gateway_pb2_grpc.SocialListeningServiceAsyncStub = (
            gateway_pb2_grpc.SocialListeningServiceStub(channel)
        )
        self.surveys: gateway_pb2_grpc.SurveyServiceAsyncStub = gateway_pb2_grpc.SurveyServiceStub(
            channel
        )
        self.metrics: gateway_pb2_grpc.MetricsServiceAsyncStub = (
            gateway_pb2_grpc.MetricsServiceStub(channel)
        )
        self.customers: gateway_pb2_grpc.CustomerServiceAsyncStub = (
            gateway_pb2_grpc.CustomerServiceStub(channel)
        )
        self.identity: gateway_pb2_grpc.IdentityServiceAsyncStub = (
            gateway_pb2_grpc.IdentityServiceStub(channel)
        )
        self.sales: gateway_sales_pb2_grpc.SalesServiceAsyncStub = (
            gateway_sales_pb2_grpc.SalesServiceStub(channel)
        )
        self.territories: gateway_sales_pb2_grpc.TerritoryServiceAsyncStub = (
            gateway_sales_pb2_grpc.TerritoryServiceStub(channel)
        )
        self.orders: gateway_sales_pb2_grpc.OrderServiceAsyncStub = (
            gateway_sales_pb2_grpc.OrderServiceStub(channel)
        )
        self.activities: gateway_sales_pb2_grpc.ActivityServiceAsyncStub = (
            gateway_sales_pb2_grpc.ActivityServiceStub(channel)
        )
        self.appointments: gateway_sales_pb2_grpc.AppointmentServiceAsyncStub = (
            gateway_sales_pb2_grpc.AppointmentServiceStub(channel)
        )
        self.campaigns: gateway_sales_pb2_grpc.CampaignServiceAsyncStub = (
            gateway_sales_pb2_grpc.CampaignServiceStub(channel)
        )

    @property
    def target(self) -> str:
        """The gateway this client calls."""
        return self.settings.target

    async def close(self, grace: float | None = None) -> None:
        """Close the channel; calls still in flight after ``grace`` seconds are cancelled."""
        await self.channel.close(grace)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncCrmClient(target={self.target!r}, credential={self.settings.credential_kind})"
