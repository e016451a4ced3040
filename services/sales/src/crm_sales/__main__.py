"""``python -m crm_sales`` starts the service."""

from crm_sales.main import main

main()
