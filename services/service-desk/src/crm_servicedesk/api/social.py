"""``crm.servicedesk.v1.SocialListeningService``: mention ingestion, unary and streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from crm.servicedesk.v1 import servicedesk_pb2 as pb
from crm.servicedesk.v1 import servicedesk_pb2_grpc
from crm_platform.context import current_call
from crm_platform.paging import PageQuery
from crm_servicedesk import contract
from crm_servicedesk.api import convert
from crm_servicedesk.use_cases.social import MentionDraft, SocialListening

Context = Any


def mention_draft(message: pb.Mention, path: str = "mention") -> MentionDraft:
    """A mention as ingested (``path`` names it in errors)."""
    return MentionDraft(
        network=message.network,
        post_id=message.post_id,
        author_handle=message.author_handle,
        author_followers=message.author_followers,
        text=message.text,
        url=message.url,
        posted_at=convert.from_timestamp(message.posted_time, f"{path}.posted_time"),
        in_reply_to=message.in_reply_to,
        brand=message.brand,
    )


class SocialListeningService(servicedesk_pb2_grpc.SocialListeningServiceServicer):
    """The social listening handlers."""

    def __init__(self, social: SocialListening) -> None:
        self.social = social

    async def IngestMention(
        self, request: pb.IngestMentionRequest, context: Context
    ) -> pb.IngestMentionResponse:
        """One mention; a repeat returns the stored one, marked duplicate."""
        result = await self.social.ingest_mentions([mention_draft(request.mention)])
        if result.mentions:
            return pb.IngestMentionResponse(mention=contract.mention_to_proto(result.mentions[0]))
        stored = await self.social.get_mention(
            f"{request.mention.network}:{request.mention.post_id}"
        )
        return pb.IngestMentionResponse(mention=contract.mention_to_proto(stored), duplicate=True)

    async def IngestMentions(
        self, request_iterator: AsyncIterator[pb.IngestMentionsRequest], context: Context
    ) -> pb.IngestMentionsResponse:
        """Batches from the stream, each written atomically."""
        accepted = duplicates = opened = 0
        async for request in request_iterator:
            result = await self.social.ingest_mentions(
                [mention_draft(m, f"mentions[{i}]") for i, m in enumerate(request.mentions)]
            )
            accepted += len(result.mentions)
            duplicates += len(request.mentions) - len(result.mentions)
            opened += result.tickets_opened
        return pb.IngestMentionsResponse(
            accepted=accepted, duplicates=duplicates, tickets_opened=opened
        )

    async def GetMention(
        self, request: pb.GetMentionRequest, context: Context
    ) -> pb.GetMentionResponse:
        """One mention by id (``<network>:<post id>``)."""
        mention = await self.social.get_mention(request.id)
        return pb.GetMentionResponse(mention=contract.mention_to_proto(mention))

    async def ListMentions(
        self, request: pb.ListMentionsRequest, context: Context
    ) -> pb.ListMentionsResponse:
        """Mentions newest first (by post time)."""
        query = PageQuery.of(
            {
                "op": "ListMentions",
                "tenant": current_call().tenant_id,
                "author_contact_id": request.author_contact_id,
            },
            request.page_size,
            request.page_token,
        )
        mentions = await self.social.list_mentions(
            request.author_contact_id, query.limit, convert.keyset_position(query.after)
        )
        page, token = query.page(mentions, lambda m: [m.posted_at, m.mention_id])
        return pb.ListMentionsResponse(
            mentions=[contract.mention_to_proto(m) for m in page], next_page_token=token
        )
