"""Entrypoint of the metrics service.

``python -m crm_metrics`` (or ``crm-metrics``) serves; ``python -m crm_metrics replay ...``
rebuilds a namespace from the topics (see :mod:`crm_metrics.replay`).
"""

from __future__ import annotations

import sys

from crm_metrics.bootstrap import bootstrap
from crm_metrics.settings import MetricsSettings
from crm_platform.server import run


def main() -> None:
    """Serve until SIGTERM, or run the ``replay`` command."""
    if len(sys.argv) > 1 and sys.argv[1] == "replay":
        from crm_metrics.replay import main as replay_main

        raise SystemExit(replay_main(sys.argv[2:]))
    run(MetricsSettings, bootstrap)


if __name__ == "__main__":
    main()
