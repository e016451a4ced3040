"""The ``crm`` command: the gateway's API from a shell, as tables or as JSON.

::

    crm [--gateway HOST:PORT] [--token JWT | --api-key KEY] [--timeout S] [--tls] [--json]
        COMMAND ...

Commands: ``whoami``; ``contacts create|get|list|search``; ``tickets
create|get|list|reply|open|pause|resolve|reopen|close``; ``kpis``; ``gap``; ``customer``; and the
sales commands (:mod:`crm_client.sales_cli`): ``pipelines create|get|list``, ``products
create|get|list``, ``leads create|get|list|work|qualify|disqualify|convert``, ``opportunities
create|get|list|move|win|lose|reopen``, ``quotes create|get|list|send|accept|reject|pdf``. The
connection options may come before or after the command; they default to ``$CRM_GATEWAY``,
``$CRM_TOKEN``, ``$CRM_API_KEY`` and ``$CRM_TIMEOUT``.

Output: readable tables on stdout; with ``--json`` the response message as proto3 JSON
(``google.protobuf.json_format``; camelCase field names, enums by name, int64 as strings).

Exit status:

* ``0``: done;
* ``1``: the call failed (NOT_FOUND, FAILED_PRECONDITION, RESOURCE_EXHAUSTED, UNAVAILABLE,
  DEADLINE_EXCEEDED, ...);
* ``2``: usage error, found by ``crm`` itself or by the gateway (INVALID_ARGUMENT);
* ``3``: authentication or authorisation failed (UNAUTHENTICATED, PERMISSION_DENIED);
* ``130``: interrupted.

Errors go to stderr: the status code and message, one line per field violation, and how long
to wait after a rate limit; with ``--json``, as ``{"error": {...}}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import metadata
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from rich.console import Console
from rich.text import Text

from crm.contacts.v1 import contacts_pb2
from crm.gateway.v1 import gateway_pb2
from crm.metrics.v1 import metrics_pb2
from crm.servicedesk.v1 import servicedesk_pb2 as sd
from crm_client import render
from crm_client.client import CrmClient
from crm_client.config import ENV_API_KEY, ENV_GATEWAY, ENV_TIMEOUT, ENV_TOKEN
from crm_client.errors import CrmError
from crm_client.values import enum_choices, parse_enum, parse_instant, to_timestamp

if TYPE_CHECKING:
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper

V = TypeVar("V", bound=int)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_INTERRUPTED = 130

DEFAULT_KPIS = (
    "tickets_created",
    "backlog",
    "frt_wall",
    "frt_business",
    "resolution_wall",
    "sla_first_response",
    "csat",
    "nps",
    "customer_wait",
    "perception_gap",
)
"""What ``crm kpis`` shows without ``--kpi``: volume, backlog, speed, SLA, satisfaction, gap."""
DEFAULT_RANGE = timedelta(days=7)
"""The range of ``crm kpis`` and ``crm gap`` without ``--from``: the last seven days."""

CHANNEL_ALIASES = {"chat": "live_chat", "web": "web_form", "form": "web_form", "mail": "email"}
STATUS_ALIASES = {"pending": "pending_customer", "hold": "on_hold", "waiting": "pending_customer"}
TYPE_ALIASES = {
    "request": "service_request",
    "question": "information_request",
    "info": "information_request",
    "return": "product_return",
}
NETWORK_ALIASES = {"twitter": "x"}
STAGE_ALIASES = {"former": "former_customer"}

# The verbs of `crm tickets` that move a ticket along its lifecycle, and the status they ask for.
TRANSITIONS: dict[str, tuple[sd.TicketStatus.ValueType, str]] = {
    "open": (sd.TICKET_STATUS_OPEN, "start working on a ticket (new/pending/on hold → open)"),
    "pause": (
        sd.TICKET_STATUS_PENDING_CUSTOMER,
        "wait for the customer (→ pending_customer; --on-hold: → on_hold); pauses SLA clocks",
    ),
    "resolve": (sd.TICKET_STATUS_RESOLVED, "mark a ticket solved (→ resolved)"),
    "reopen": (sd.TICKET_STATUS_OPEN, "reopen a resolved ticket (resolved → open)"),
    "close": (sd.TICKET_STATUS_CLOSED, "close a resolved ticket for good (resolved → closed)"),
}


class UsageError(Exception):
    """A command line ``crm`` cannot act on (exit status 2)."""


# --- output ---------------------------------------------------------------------------------


@dataclass
class Output:
    """Where a command's answer goes: tables on ``console``, or JSON on stdout."""

    json_mode: bool
    console: Console

    def emit(self, payload: Message | dict[str, Any], draw: Callable[[Console], None]) -> None:
        """Print ``payload`` as JSON (``--json``), else call ``draw`` to print tables."""
        if not self.json_mode:
            draw(self.console)
            return
        document = _to_json_value(payload)
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        sys.stdout.flush()


def _to_json_value(payload: Any) -> Any:
    """Messages as proto3 JSON values, inside dicts and lists too."""
    if isinstance(payload, Message):
        return json_format.MessageToDict(payload)
    if isinstance(payload, dict):
        return {key: _to_json_value(value) for key, value in payload.items()}
    if isinstance(payload, list | tuple):
        return [_to_json_value(value) for value in payload]
    return payload


@dataclass
class Context:
    """What a command handler works with."""

    client: CrmClient
    out: Output


Handler = Callable[[Context, argparse.Namespace], None]


# --- argument types -------------------------------------------------------------------------


def _enum_type(
    wrapper: _EnumTypeWrapper[V], aliases: dict[str, str] | None = None
) -> Callable[[str], V]:
    def convert(text: str) -> V:
        try:
            return parse_enum(wrapper, text, aliases)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    convert.__name__ = wrapper.DESCRIPTOR.name
    return convert


def _choices_help(wrapper: _EnumTypeWrapper[V], aliases: dict[str, str] | None = None) -> str:
    extra = f" (also: {', '.join(sorted(aliases))})" if aliases else ""
    return "one of " + ", ".join(enum_choices(wrapper)) + extra


def _split(values: Iterable[str] | None) -> list[str]:
    """Repeated options that may also hold comma-separated lists."""
    return [part.strip() for value in values or () for part in value.split(",") if part.strip()]


def _social_identity(text: str) -> contacts_pb2.Identity:
    """``network:handle`` → a SOCIAL identity."""
    network, sep, handle = text.partition(":")
    if not sep or not network.strip() or not handle.strip():
        raise UsageError(f"--handle {text!r}: expected NETWORK:HANDLE, e.g. x:@ann")
    try:
        value = parse_enum(contacts_pb2.SocialNetwork, network, NETWORK_ALIASES)
    except ValueError as error:
        raise UsageError(f"--handle {text!r}: network {error}") from None
    return contacts_pb2.Identity(
        kind=contacts_pb2.IDENTITY_KIND_SOCIAL, value=handle.strip(), network=value
    )


def _requester(text: str) -> sd.RequesterIdentity:
    """``email:ann@example.com``, ``phone:+4930123456``, ``social:x:@ann``."""
    kind, sep, rest = text.partition(":")
    kind = kind.strip().lower()
    if not sep or kind not in ("email", "phone", "social") or not rest.strip():
        raise UsageError(
            f"--requester {text!r}: expected email:ADDRESS, phone:NUMBER or social:NETWORK:HANDLE"
        )
    if kind != "social":
        return sd.RequesterIdentity(kind=kind, value=rest.strip())
    network, sep, handle = rest.partition(":")
    if not sep or not network.strip() or not handle.strip():
        raise UsageError(
            f"--requester {text!r}: expected social:NETWORK:HANDLE, e.g. social:x:@ann"
        )
    network = NETWORK_ALIASES.get(network.strip().lower(), network.strip().lower())
    return sd.RequesterIdentity(kind="social", value=handle.strip(), network=network)


def _filters(values: Iterable[str] | None) -> dict[str, str]:
    filters: dict[str, str] = {}
    for value in values or ():
        key, sep, wanted = value.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--filter {value!r}: expected DIMENSION=VALUE, e.g. channel=email")
        filters[key.strip()] = wanted.strip()
    return filters


def _time_range(args: argparse.Namespace) -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    try:
        end = parse_instant(args.end, now=now) if args.end else now
        start = parse_instant(args.start, now=now) if args.start else end - DEFAULT_RANGE
    except ValueError as error:
        raise UsageError(str(error)) from None
    if start >= end:
        raise UsageError(f"--from ({start.isoformat()}) must be before --to ({end.isoformat()})")
    return start, end


# --- commands -------------------------------------------------------------------------------


def cmd_whoami(ctx: Context, args: argparse.Namespace) -> None:
    """``crm whoami``: the caller as the gateway sees it."""
    caller = ctx.client.identity.GetCaller(gateway_pb2.GetCallerRequest())
    ctx.out.emit(caller, lambda console: render.render_caller(console, caller, ctx.client.target))


def cmd_contacts_create(ctx: Context, args: argparse.Namespace) -> None:
    """``crm contacts create``."""
    identities: list[contacts_pb2.Identity] = []
    for index, email in enumerate(args.email or ()):
        identities.append(
            contacts_pb2.Identity(
                kind=contacts_pb2.IDENTITY_KIND_EMAIL, value=email, primary=index == 0
            )
        )
    for index, phone in enumerate(args.phone or ()):
        identities.append(
            contacts_pb2.Identity(
                kind=contacts_pb2.IDENTITY_KIND_PHONE, value=phone, primary=index == 0
            )
        )
    for index, handle in enumerate(args.handle or ()):
        identity = _social_identity(handle)
        identity.primary = index == 0
        identities.append(identity)
    contact = contacts_pb2.Contact(
        given_name=args.given_name or "",
        family_name=args.family_name or "",
        display_name=args.display_name or "",
        organization_id=args.organization or "",
        job_title=args.job_title or "",
        owner_id=args.owner or "",
        segments=_split(args.segment),
        identities=identities,
    )
    if args.tier is not None:
        contact.tier = args.tier
    if args.stage is not None:
        contact.lifecycle_stage = args.stage
    response = ctx.client.contacts.CreateContact(
        contacts_pb2.CreateContactRequest(contact=contact, request_id=args.request_id or "")
    )
    ctx.out.emit(
        response, lambda console: render.render_contact(console, response.contact, "Created")
    )


def cmd_contacts_get(ctx: Context, args: argparse.Namespace) -> None:
    """``crm contacts get ID``."""
    response = ctx.client.contacts.GetContact(contacts_pb2.GetContactRequest(id=args.id))
    ctx.out.emit(response, lambda console: render.render_contact(console, response.contact))


def cmd_contacts_list(ctx: Context, args: argparse.Namespace) -> None:
    """``crm contacts list``."""
    request = contacts_pb2.ListContactsRequest(
        page_size=args.page_size,
        page_token=args.page_token or "",
        owner_id=args.owner or "",
        organization_id=args.organization or "",
        segment=args.segment or "",
    )
    if args.tier is not None:
        request.tier = args.tier
    if args.stage is not None:
        request.lifecycle_stage = args.stage
    response = ctx.client.contacts.ListContacts(request)
    ctx.out.emit(
        response,
        lambda console: render.render_contacts(
            console, response.contacts, response.next_page_token
        ),
    )


def cmd_contacts_search(ctx: Context, args: argparse.Namespace) -> None:
    """``crm contacts search QUERY``."""
    response = ctx.client.contacts.SearchContacts(
        contacts_pb2.SearchContactsRequest(
            name_prefix=args.query, page_size=args.page_size, page_token=args.page_token or ""
        )
    )
    ctx.out.emit(
        response,
        lambda console: render.render_contacts(
            console,
            response.contacts,
            response.next_page_token,
            f"Contacts matching {args.query!r}",
        ),
    )


def cmd_tickets_create(ctx: Context, args: argparse.Namespace) -> None:
    """``crm tickets create``."""
    ticket = sd.Ticket(
        type=args.type,
        channel=args.channel,
        subject=args.subject,
        description=args.description or "",
        contact_id=args.contact or "",
        assignee_id=args.assignee or "",
        team_id=args.team or "",
        tags=_split(args.tag),
        category=args.category or "",
        product=args.product or "",
    )
    if args.priority is not None:
        ticket.priority = args.priority
    request = sd.CreateTicketRequest(
        ticket=ticket, first_message=args.message or "", request_id=args.request_id or ""
    )
    if args.requester:
        request.requester_identity.CopyFrom(_requester(args.requester))
    response = ctx.client.tickets.CreateTicket(request)
    ctx.out.emit(
        response, lambda console: render.render_ticket(console, response.ticket, title="Created")
    )


def cmd_tickets_get(ctx: Context, args: argparse.Namespace) -> None:
    """``crm tickets get ID [--messages]``."""
    response = ctx.client.tickets.GetTicket(sd.GetTicketRequest(id=args.id))
    if not (args.messages or args.internal):
        ctx.out.emit(response, lambda console: render.render_ticket(console, response.ticket))
        return
    conversation = ctx.client.tickets.ListMessages(
        sd.ListMessagesRequest(ticket_id=args.id, include_internal=args.internal)
    )
    ctx.out.emit(
        {"ticket": response.ticket, "messages": list(conversation.messages)},
        lambda console: render.render_ticket(console, response.ticket, conversation.messages),
    )


def cmd_tickets_list(ctx: Context, args: argparse.Namespace) -> None:
    """``crm tickets list``."""
    statuses = []
    for label in _split(args.status):
        try:
            statuses.append(parse_enum(sd.TicketStatus, label, STATUS_ALIASES))
        except ValueError as error:
            raise UsageError(f"--status: {error}") from None
    response = ctx.client.tickets.ListTickets(
        sd.ListTicketsRequest(
            statuses=statuses,
            contact_id=args.contact or "",
            assignee_id=args.assignee or "",
            team_id=args.team or "",
            page_size=args.page_size,
            page_token=args.page_token or "",
        )
    )
    ctx.out.emit(
        response,
        lambda console: render.render_tickets(console, response.tickets, response.next_page_token),
    )


def cmd_tickets_reply(ctx: Context, args: argparse.Namespace) -> None:
    """``crm tickets reply ID --body TEXT [--internal]``."""
    message = sd.Message(
        author_type=args.author_type,
        author_id=args.author or "",
        visibility=sd.VISIBILITY_INTERNAL if args.internal else sd.VISIBILITY_PUBLIC,
        body=args.body,
    )
    response = ctx.client.tickets.AddMessage(
        sd.AddMessageRequest(ticket_id=args.id, message=message, request_id=args.request_id or "")
    )
    ctx.out.emit(response, lambda console: render.render_message_added(console, response))


def cmd_tickets_transition(ctx: Context, args: argparse.Namespace) -> None:
    """``crm tickets open|pause|resolve|reopen|close ID``: one TransitionTicket call.

    ``--expected-version N`` makes the move conditional: the gateway answers
    FAILED_PRECONDITION (STALE_VERSION) if the ticket changed since version N was read.
    Without it (0) the move is unconditional; moving to the current status is a no-op.
    """
    status = TRANSITIONS[args.verb][0]
    if args.verb == "pause" and args.on_hold:
        status = sd.TICKET_STATUS_ON_HOLD
    response = ctx.client.tickets.TransitionTicket(
        sd.TransitionTicketRequest(
            id=args.id,
            status=status,
            reason=args.reason or "",
            expected_version=args.expected_version,
        )
    )
    ctx.out.emit(response, lambda console: render.render_transition(console, response.ticket))


def cmd_kpis(ctx: Context, args: argparse.Namespace) -> None:
    """``crm kpis``: KPIs over a range (default: the headline set, last 7 days, totals)."""
    if args.catalog:
        catalog = ctx.client.metrics.ListKpis(metrics_pb2.ListKpisRequest())
        ctx.out.emit(catalog, lambda console: render.render_catalog(console, catalog))
        return
    start, end = _time_range(args)
    kpis = list(dict.fromkeys(_split(args.kpi))) or list(DEFAULT_KPIS)
    request = metrics_pb2.GetKpisRequest(
        kpis=kpis,
        start_time=to_timestamp(start),
        end_time=to_timestamp(end),
        granularity=args.granularity,
        filters=_filters(args.filter),
        group_by=args.group_by or "",
        timezone=args.timezone or "",
        namespace=args.namespace or "",
    )
    response = ctx.client.metrics.GetKpis(request)
    ctx.out.emit(response, lambda console: render.render_kpis(console, response, request))


def cmd_gap(ctx: Context, args: argparse.Namespace) -> None:
    """``crm gap``: the perception gap (company clock vs customer's) over a range."""
    start, end = _time_range(args)
    response = ctx.client.metrics.GetPerceptionGap(
        metrics_pb2.GetPerceptionGapRequest(
            start_time=to_timestamp(start),
            end_time=to_timestamp(end),
            filters=_filters(args.filter),
            worst_limit=args.worst,
            namespace=args.namespace or "",
        )
    )
    ctx.out.emit(response, lambda console: render.render_gap(console, response))


def cmd_customer(ctx: Context, args: argparse.Namespace) -> None:
    """``crm customer ID``: the single customer view."""
    response = ctx.client.customers.GetCustomer360(
        gateway_pb2.GetCustomer360Request(contact_id=args.id, ticket_limit=args.tickets)
    )
    ctx.out.emit(response, lambda console: render.render_customer(console, response))


# --- the parser -----------------------------------------------------------------------------


def _add_connection_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The global options; on sub-commands they default to "not given" so that an option
    before the command is not reset by the sub-command's default."""

    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    group = parser.add_argument_group("connection and output")
    group.add_argument(
        "--gateway",
        metavar="HOST:PORT",
        default=default(None),
        help=f"the gateway's gRPC address (${ENV_GATEWAY}, default 127.0.0.1:50050)",
    )
    group.add_argument(
        "--token", metavar="JWT", default=default(None), help=f"a signed token (${ENV_TOKEN})"
    )
    group.add_argument(
        "--api-key", metavar="KEY", default=default(None), help=f"an API key (${ENV_API_KEY})"
    )
    group.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=float,
        default=default(None),
        help=f"deadline of each call (${ENV_TIMEOUT}, default 10; 0: none)",
    )
    group.add_argument(
        "--tls",
        action="store_true",
        default=default(False),
        help="connect with TLS (system root certificates)",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print the response as proto3 JSON instead of tables",
    )


def _command(
    subparsers: Any, name: str, handler: Handler, help_text: str, **kwargs: Any
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help_text, description=help_text, **kwargs
    )
    _add_connection_options(parser, top=False)
    parser.set_defaults(func=handler, command_parser=parser)
    return parser


def _paging(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--page-size", type=int, default=0, help="how many per page (default: server's, 50)"
    )
    parser.add_argument("--page-token", help="next_page_token of the previous page")


def _time_options(parser: argparse.ArgumentParser) -> None:
    instant = "ISO 8601 date/date-time (no offset = UTC), 'now', or an age such as 24h, 7d"
    parser.add_argument("--from", dest="start", metavar="WHEN", help=f"start; {instant}")
    parser.add_argument("--to", dest="end", metavar="WHEN", help=f"end (default now); {instant}")
    parser.add_argument(
        "--filter",
        action="append",
        metavar="DIM=VALUE",
        help="restrict to a dimension value, e.g. channel=email (repeatable, at most 2)",
    )
    parser.add_argument("--namespace", help="a replay's namespace (default: live)")


def build_parser() -> argparse.ArgumentParser:
    """The ``crm`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="crm",
        description="Work with the CRM through its gateway: contacts, tickets, KPIs, sales.",
        epilog="Exit status: 0 ok, 1 call failed, 2 usage or INVALID_ARGUMENT, "
        "3 UNAUTHENTICATED/PERMISSION_DENIED.",
    )
    parser.add_argument("--version", action="version", version=f"crm {_version()}")
    _add_connection_options(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    _command(commands, "whoami", cmd_whoami, "who the gateway thinks you are")

    # contacts
    contacts = commands.add_parser(
        "contacts", help="create, get, list and search contacts", description="Contacts."
    )
    contact_commands = contacts.add_subparsers(dest="action", metavar="ACTION", required=True)
    tier = _enum_type(contacts_pb2.ValueTier)
    stage = _enum_type(contacts_pb2.LifecycleStage, STAGE_ALIASES)

    create = _command(contact_commands, "create", cmd_contacts_create, "create a contact")
    create.add_argument("--given-name", help="first name")
    create.add_argument("--family-name", help="last name")
    create.add_argument("--display-name", help="how the contact wants to be addressed")
    create.add_argument("--email", action="append", help="e-mail address (repeatable)")
    create.add_argument("--phone", action="append", help="phone number, e.g. +4930123456")
    create.add_argument(
        "--handle", action="append", metavar="NETWORK:HANDLE", help="social handle, e.g. x:@ann"
    )
    create.add_argument("--tier", type=tier, help=_choices_help(contacts_pb2.ValueTier))
    create.add_argument(
        "--stage", type=stage, help=_choices_help(contacts_pb2.LifecycleStage, STAGE_ALIASES)
    )
    create.add_argument("--organization", metavar="ID", help="organization id")
    create.add_argument("--job-title")
    create.add_argument("--owner", metavar="AGENT", help="the responsible agent's id")
    create.add_argument("--segment", action="append", help="segment (repeatable)")
    create.add_argument("--request-id", help="idempotency key: a retry returns the same contact")

    get = _command(contact_commands, "get", cmd_contacts_get, "show a contact")
    get.add_argument("id", metavar="ID")

    listing = _command(contact_commands, "list", cmd_contacts_list, "list contacts")
    _paging(listing)
    listing.add_argument("--tier", type=tier, help=_choices_help(contacts_pb2.ValueTier))
    listing.add_argument("--stage", type=stage, help=_choices_help(contacts_pb2.LifecycleStage))
    listing.add_argument("--owner", metavar="AGENT")
    listing.add_argument("--organization", metavar="ID")
    listing.add_argument("--segment")

    search = _command(
        contact_commands, "search", cmd_contacts_search, "find contacts by name prefix"
    )
    search.add_argument("query", metavar="QUERY", help="start of a given, family or display name")
    _paging(search)

    # tickets
    tickets = commands.add_parser(
        "tickets", help="create, show, list, answer and move tickets", description="Tickets."
    )
    ticket_commands = tickets.add_subparsers(dest="action", metavar="ACTION", required=True)

    create = _command(ticket_commands, "create", cmd_tickets_create, "open a ticket")
    requester = create.add_mutually_exclusive_group(required=True)
    requester.add_argument("--contact", metavar="ID", help="the requesting contact's id")
    requester.add_argument(
        "--requester",
        metavar="KIND:VALUE",
        help="the requester by identity: email:ADDRESS, phone:NUMBER, social:NETWORK:HANDLE",
    )
    create.add_argument("--subject", required=True, help="short summary")
    create.add_argument("--description", help="the issue in the customer's words")
    create.add_argument("--message", help="the customer's first message")
    create.add_argument(
        "--channel",
        type=_enum_type(sd.Channel, CHANNEL_ALIASES),
        default=sd.CHANNEL_EMAIL,
        help=_choices_help(sd.Channel, CHANNEL_ALIASES) + "; default email",
    )
    create.add_argument(
        "--priority",
        type=_enum_type(sd.Priority),
        help=_choices_help(sd.Priority) + "; default normal (routing rules may change it)",
    )
    create.add_argument(
        "--type",
        type=_enum_type(sd.TicketType, TYPE_ALIASES),
        default=sd.TICKET_TYPE_SERVICE_REQUEST,
        help=_choices_help(sd.TicketType, TYPE_ALIASES) + "; default service_request",
    )
    create.add_argument("--tag", action="append", help="label (repeatable)")
    create.add_argument("--category")
    create.add_argument("--product")
    create.add_argument("--assignee", metavar="AGENT")
    create.add_argument("--team", metavar="TEAM")
    create.add_argument("--request-id", help="idempotency key: a retry returns the same ticket")

    get = _command(ticket_commands, "get", cmd_tickets_get, "show a ticket")
    get.add_argument("id", metavar="ID")
    get.add_argument("--messages", action="store_true", help="show the conversation too")
    get.add_argument(
        "--internal", action="store_true", help="show the conversation with internal notes"
    )

    listing = _command(ticket_commands, "list", cmd_tickets_list, "list tickets, newest first")
    listing.add_argument(
        "--status",
        action="append",
        metavar="STATUS",
        help=_choices_help(sd.TicketStatus, STATUS_ALIASES) + " (repeatable or comma-separated)",
    )
    listing.add_argument("--contact", metavar="ID")
    listing.add_argument("--assignee", metavar="AGENT")
    listing.add_argument("--team", metavar="TEAM")
    _paging(listing)

    reply = _command(ticket_commands, "reply", cmd_tickets_reply, "add a message to a ticket")
    reply.add_argument("id", metavar="ID")
    reply.add_argument("--body", required=True, help="the text")
    reply.add_argument(
        "--internal", action="store_true", help="an internal note the customer does not see"
    )
    reply.add_argument(
        "--as",
        dest="author_type",
        type=_enum_type(sd.AuthorType),
        default=sd.AUTHOR_TYPE_AGENT,
        help=_choices_help(sd.AuthorType) + "; default agent",
    )
    reply.add_argument("--author", metavar="ID", help="the author's id (agent, contact or bot)")
    reply.add_argument("--request-id", help="idempotency key (e.g. an e-mail's Message-ID)")

    for verb, (_, help_text) in TRANSITIONS.items():
        move = _command(ticket_commands, verb, cmd_tickets_transition, help_text)
        move.set_defaults(verb=verb)
        move.add_argument("id", metavar="ID")
        move.add_argument("--reason", help="why (kept on the ticket's event)")
        move.add_argument(
            "--expected-version",
            type=int,
            default=0,
            metavar="N",
            help="only if the ticket is still at version N (else FAILED_PRECONDITION)",
        )
        if verb == "pause":
            move.add_argument(
                "--on-hold", action="store_true", help="waiting for a third party, not the customer"
            )

    # metrics
    kpis = _command(
        commands,
        "kpis",
        cmd_kpis,
        "KPIs over a time range (default: headline KPIs, last 7 days, totals)",
    )
    kpis.add_argument(
        "--kpi",
        action="append",
        metavar="NAME",
        help="KPI name, optionally @version (repeatable or comma-separated; see --catalog)",
    )
    _time_options(kpis)
    kpis.add_argument(
        "--granularity",
        type=_enum_type(metrics_pb2.Granularity),
        default=metrics_pb2.GRANULARITY_TOTAL,
        help="hour, day or total (default total)",
    )
    kpis.add_argument("--group-by", metavar="DIM", help="break down by a dimension, e.g. channel")
    kpis.add_argument("--timezone", metavar="ZONE", help="IANA zone of day buckets")
    kpis.add_argument("--catalog", action="store_true", help="list the KPIs and dimensions")

    gap = _command(
        commands, "gap", cmd_gap, "the perception gap: company clock vs the customer's wait"
    )
    _time_options(gap)
    gap.add_argument(
        "--worst", type=int, default=0, metavar="N", help="widest-gap tickets to show (default 10)"
    )

    customer = _command(commands, "customer", cmd_customer, "the single customer view")
    customer.add_argument("id", metavar="CONTACT_ID")
    customer.add_argument(
        "--tickets", type=int, default=0, metavar="N", help="recent tickets (default 10, max 50)"
    )

    from crm_client import sales_cli  # here: it imports this module's helpers

    sales_cli.register(commands)
    from crm_client import sales_more_cli

    sales_more_cli.register(commands)
    return parser


def _version() -> str:
    try:
        return metadata.version("crm-client")
    except metadata.PackageNotFoundError:
        return "unknown"


# --- errors ---------------------------------------------------------------------------------


def exit_code(error: CrmError) -> int:
    """The exit status of a failed call (see the module docstring)."""
    if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
        return EXIT_USAGE
    if error.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return EXIT_AUTH
    return EXIT_FAILED


def _hint(error: CrmError, client: CrmClient | None, timeout: float | None) -> str:
    code = error.code()
    if code == grpc.StatusCode.UNAUTHENTICATED and (
        client is None or client.settings.credential_kind is None
    ):
        return (
            f"no credential given: pass --token or --api-key (or set {ENV_TOKEN} or {ENV_API_KEY})"
        )
    if code == grpc.StatusCode.UNAVAILABLE and client is not None:
        return f"is the gateway running at {client.target}?"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        seconds = "" if timeout is None else f" after {timeout:g} s"
        return f"no answer{seconds}; --timeout raises the deadline"
    return ""


def report_error(
    error: CrmError,
    *,
    json_mode: bool,
    stderr: Console,
    client: CrmClient | None = None,
) -> int:
    """Print a failed call on stderr; return the exit status."""
    timeout = client.settings.timeout if client is not None else None
    hint = _hint(error, client, timeout)
    if json_mode:
        document = error.to_dict()
        if hint:
            document["hint"] = hint
        stderr.file.write(json.dumps({"error": document}, indent=2) + "\n")
        stderr.file.flush()
        return exit_code(error)
    head = Text("crm: ", style="bold red")
    head.append(error.code_name, style="bold red")
    if error.message:
        head.append(f": {error.message}")
    stderr.print(head)
    for violation in error.field_violations:
        line = Text("  • ")
        line.append(violation.field or "(request)", style="bold")
        line.append(f": {violation.description}")
        stderr.print(line)
    for precondition in error.preconditions:
        stderr.print(Text(f"  • {precondition}"))
    if error.resource_type or error.resource_name:
        stderr.print(Text(f"  not found: {error.resource_type} {error.resource_name}".rstrip()))
    if error.retry_after is not None:
        stderr.print(Text(f"  retry after {error.retry_after:g} s", style="yellow"))
    if hint:
        stderr.print(Text(f"  {hint}", style="dim"))
    return exit_code(error)


def _usage_error(parser: argparse.ArgumentParser, message: str) -> NoReturn:
    parser.error(message)  # prints usage and "crm: error: ..." on stderr, exits with 2


# --- entry point ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``crm`` with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, --version, usage errors
        return done.code if isinstance(done.code, int) else EXIT_USAGE
    stdout = Console(markup=False, highlight=False, emoji=False)
    stderr = Console(stderr=True, markup=False, highlight=False, emoji=False)
    client: CrmClient | None = None
    try:
        try:
            client = CrmClient(
                args.gateway,
                token=args.token,
                api_key=args.api_key,
                timeout=args.timeout,
                secure=args.tls,
            )
        except ValueError as error:
            raise UsageError(str(error)) from None
        with client:
            handler: Handler = args.func
            handler(Context(client, Output(args.json, stdout)), args)
    except UsageError as error:
        try:
            _usage_error(args.command_parser, str(error))
        except SystemExit as done:
            return done.code if isinstance(done.code, int) else EXIT_USAGE
    except grpc.RpcError as error:
        return report_error(
            CrmError.from_rpc_error(error), json_mode=args.json, stderr=stderr, client=client
        )
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``crm ... | head``): keep Python from complaining at exit.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
