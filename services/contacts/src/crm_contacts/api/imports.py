"""``crm.contacts.v1.ContactImportService``: the import stream in, row reports out.

The stream is read with ``context.read()``, which validates each item against the proto rules
as it is read (the validating interceptor): a row item the rules refuse raises
``InvalidArgument`` for that row only, and it is reported REFUSED while the stream goes on (as
the sales campaigns' interaction stream does). A bad or missing header fails the call.
"""

from __future__ import annotations

from typing import Any

import grpc

from crm.contacts.v1 import imports_pb2 as pb
from crm.contacts.v1 import imports_pb2_grpc
from crm_contacts import imports_contract as contract
from crm_contacts.use_cases.imports import ContactImports
from crm_platform.context import current_call
from crm_platform.errors import InvalidArgument

Context = Any  # grpc.aio.ServicerContext (the validating one of the interceptor)


class ContactImportService(imports_pb2_grpc.ContactImportServiceServicer):
    """Hands an import stream's rows to the import use case one at a time."""

    def __init__(self, imports: ContactImports) -> None:
        self.imports = imports

    async def ImportContacts(
        self, request_iterator: object, context: Context
    ) -> pb.ImportContactsResponse:
        first = await context.read()
        if first is grpc.aio.EOF or first.WhichOneof("item") != "header":  # type: ignore[attr-defined]
            raise InvalidArgument.single("header", "the stream's first item must be the header")
        header = first.header
        run = self.imports.start(
            current_call(),
            contract.FORMATS[header.format],
            contract.KINDS[header.kind],
            header.csv_header,
        )
        index = 0
        while True:
            try:
                item = await context.read()
                if item is grpc.aio.EOF:  # type: ignore[attr-defined]  # missing in the stubs
                    break
                if item.WhichOneof("item") != "row":
                    raise InvalidArgument.single("header", "only the first item is the header")
            except InvalidArgument as invalid:  # this row only: reported, the stream goes on
                run.refuse(index, 0, invalid)
                index += 1
                continue
            await run.add(index, item.row.line, item.row.text)
            index += 1
        return contract.response_to_pb(run.reports)
