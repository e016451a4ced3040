"""``python -m crm_metrics``."""

from crm_metrics.main import main

main()
