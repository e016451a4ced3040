"""Entrypoint of the contacts service: ``python -m crm_contacts`` or ``crm-contacts``."""

from __future__ import annotations

from crm_contacts.bootstrap import bootstrap
from crm_contacts.settings import ContactsSettings
from crm_platform.server import run


def main() -> None:
    """Serve until SIGTERM."""
    run(ContactsSettings, bootstrap)


if __name__ == "__main__":
    main()
