"""Python client of the CRM gateway's gRPC API, and the ``crm`` command-line tool.

* :class:`CrmClient` / :class:`AsyncCrmClient`: typed stubs of every gateway service that send
  the credential and a default deadline with each call;
* :class:`CrmError`: a failed call's status code, message, field violations and retry delay;
* :mod:`crm_client.cli`: the ``crm`` command.
"""

from crm_client.client import AsyncCrmClient, CrmClient
from crm_client.config import ClientConfig
from crm_client.errors import CrmError, FieldViolation, PreconditionViolation, translate_errors

__all__ = [
    "AsyncCrmClient",
    "ClientConfig",
    "CrmClient",
    "CrmError",
    "FieldViolation",
    "PreconditionViolation",
    "translate_errors",
]
