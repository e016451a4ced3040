"""The sales service's use cases: what a request does, between its handler and the domain.

A handler (:mod:`crm_sales.api.service`) turns the request into domain inputs and calls one use
case; the use case applies the domain rule (:mod:`crm_sales.domain`), writes through the
repository (:mod:`crm_sales.storage`) and queues its events, all in one unit of work
(:mod:`crm_platform.unit_of_work`). Nothing here imports gRPC.
"""

from crm_sales.use_cases.conversion import LeadConversions
from crm_sales.use_cases.leads import Leads
from crm_sales.use_cases.opportunities import Opportunities
from crm_sales.use_cases.pipelines import Pipelines
from crm_sales.use_cases.products import Products
from crm_sales.use_cases.quotes import Quotes
from crm_sales.use_cases.territories import TerritoryAssigner, TerritoryRules

__all__ = [
    "LeadConversions",
    "Leads",
    "Opportunities",
    "Pipelines",
    "Products",
    "Quotes",
    "TerritoryAssigner",
    "TerritoryRules",
]
