"""``python -m crm_contacts`` starts the service."""

from crm_contacts.main import main

main()
