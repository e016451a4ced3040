"""Entrypoint of the service-desk service: ``python -m crm_servicedesk`` or ``crm-servicedesk``."""

from __future__ import annotations

from crm_platform.server import run
from crm_servicedesk.bootstrap import bootstrap
from crm_servicedesk.settings import ServiceDeskSettings


def main() -> None:
    """Serve until SIGTERM."""
    run(ServiceDeskSettings, bootstrap)


if __name__ == "__main__":
    main()
