"""Stands in for the 1Password CLI (`op read --no-newline op://vault/item/field`).

No 1Password account is reachable here. It answers only with the service-account token the
test configured (in OP_SERVICE_ACCOUNT_TOKEN, as devbox-ctl passes it) and only the items
the test put in $DEVBOX_TEST_OP_ITEMS (a JSON object: reference → value).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from common import record, ruled

record("op")
ruled("op")
if os.environ.get("OP_SERVICE_ACCOUNT_TOKEN") != os.environ["DEVBOX_TEST_OP_TOKEN"]:
    sys.stderr.write("[ERROR] authentication failed: invalid service account token\n")
    sys.exit(1)
reference = sys.argv[-1]
items = json.loads(Path(os.environ["DEVBOX_TEST_OP_ITEMS"]).read_text())
if sys.argv[1:3] != ["read", "--no-newline"] or reference not in items:
    sys.stderr.write(f'[ERROR] could not read secret "{reference}": item not found\n')
    sys.exit(1)
sys.stdout.write(items[reference])
