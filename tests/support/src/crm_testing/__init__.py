"""What the CRM's tests share (imported by tests and benchmarks only; it sits above the services).

* :mod:`crm_testing.contacts`, :mod:`~crm_testing.servicedesk`, :mod:`~crm_testing.sales`,
  :mod:`~crm_testing.metrics`, :mod:`~crm_testing.gateway`: harnesses that run services on the
  session's ``infra`` (the ``crm_devstack.pytest_plugin`` fixture) and talk to them.
* :mod:`crm_testing.kafka`: reading a topic.
* :mod:`crm_testing.ticket_events`: hand-made service-desk events (the KPIS.md worked example);
  :mod:`crm_testing.histories`: realistic generated histories, reproducible from a seed.
* :mod:`crm_testing.kpi_oracle`: a naive batch oracle of the metrics service's KPIs.
"""
