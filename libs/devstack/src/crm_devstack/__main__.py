"""``python -m crm_devstack``: the same as ``crm-dev``."""

import sys

from crm_devstack.cli import main

sys.exit(main())
