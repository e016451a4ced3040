"""Entrypoint of the gateway.

``python -m crm_gateway`` (or ``crm-gateway``) serves; ``python -m crm_gateway credentials
init|token|api-key`` makes keys, tokens and API keys (see :mod:`crm_gateway.credentials_cli`).
"""

from __future__ import annotations

import sys


def main() -> None:
    """Serve until SIGTERM, or run the ``credentials`` command."""
    if len(sys.argv) > 1 and sys.argv[1] == "credentials":
        from crm_gateway.credentials_cli import main as credentials_main

        raise SystemExit(credentials_main(sys.argv[2:]))
    from crm_gateway.bootstrap import bootstrap
    from crm_gateway.settings import GatewaySettings
    from crm_platform.server import run

    run(GatewaySettings, bootstrap)


if __name__ == "__main__":
    main()
