"""Entrypoint of the sales service: ``python -m crm_sales`` or ``crm-sales``."""

from __future__ import annotations

from crm_platform.server import run
from crm_sales.bootstrap import bootstrap
from crm_sales.settings import SalesSettings


def main() -> None:
    """Serve until SIGTERM."""
    run(SalesSettings, bootstrap)


if __name__ == "__main__":
    main()
