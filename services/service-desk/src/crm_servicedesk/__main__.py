"""``python -m crm_servicedesk`` starts the service."""

from crm_servicedesk.main import main

main()
