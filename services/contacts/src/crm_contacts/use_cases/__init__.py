"""The contacts service's use cases: what a request does, between its handler and the domain.

A handler (:mod:`crm_contacts.api.service`) turns the request into domain inputs and calls one
use case; the use case applies the domain rule (:mod:`crm_contacts.domain`), writes through the
repository (:mod:`crm_contacts.storage`) and queues its events, all in one unit of work
(:mod:`crm_platform.unit_of_work`). Nothing here imports gRPC.
"""

from crm_contacts.use_cases.contacts import Contacts
from crm_contacts.use_cases.organizations import Organizations

__all__ = ["Contacts", "Organizations"]
