"""Stands in for the 1Password CLI (`op read --no-newline op://vault/item/field`).

No 1Password account is reachable here. It answers only with the service-account token the
test configured (in OP_SERVICE_ACCOUNT_TOKEN, as devbox-ctl passes it) and only the items
the test put in $DEVBOX_TEST_OP_ITEMS (a JSON object: reference → value).

Follows 1Password CLI 2 (nixpkgs' _1password-cli; op is closed source, so its command
reference is the source: developer.1password.com/docs/cli/reference/commands/read and the
global flags of developer.1password.com/docs/cli/reference): `op read` takes one secret
reference and the flags --no-newline/-n, --force/-f, --out-file/-o, --file-mode, and the
global ones; any other flag or command fails as op's parser (cobra) does, "[ERROR] <date>
<time> unknown flag: --NAME" (or `unknown command "X" for "op"`), exit 1. Errors of the
service itself ("[ERROR] … authentication failed", "… could not read secret …") exit 1 too.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from common import record, ruled

READ_FLAGS = {"--no-newline", "-n", "--force", "-f"}
READ_VALUE_FLAGS = {"--out-file", "-o", "--file-mode"}
GLOBAL_FLAGS = {"--debug", "--iso-timestamps", "--no-color"}
GLOBAL_VALUE_FLAGS = {"--account", "--cache", "--config", "--encoding", "--format", "--session"}


def error(message: str) -> None:
    sys.stderr.write(f"[ERROR] {time.strftime('%Y/%m/%d %H:%M:%S')} {message}\n")
    sys.exit(1)


def parse(argv: list[str]) -> tuple[set[str], list[str]]:
    """The flags and the positional words of `op read …`."""
    if not argv or argv[0] != "read":
        error(f'unknown command "{argv[0] if argv else ""}" for "op"')
    flags, words, index = set(), [], 1
    while index < len(argv):
        arg = argv[index]
        index += 1
        name = arg.split("=", 1)[0]
        if name in READ_VALUE_FLAGS | GLOBAL_VALUE_FLAGS:
            index += 0 if "=" in arg else 1
        elif arg in READ_FLAGS | GLOBAL_FLAGS:
            flags.add(arg)
        elif arg.startswith("-"):
            error(
                f"unknown flag: {name}"
                if arg.startswith("--")
                else f"unknown shorthand flag: {arg[1:2]!r} in {arg}"
            )
        else:
            words.append(arg)
    if len(words) != 1:
        error(f"expected exactly one secret reference, got {len(words)}")
    return flags, words


record("op")
ruled("op")
flags, (reference,) = parse(sys.argv[1:])
if os.environ.get("OP_SERVICE_ACCOUNT_TOKEN") != os.environ["DEVBOX_TEST_OP_TOKEN"]:
    error("authentication failed: invalid service account token")
items = json.loads(Path(os.environ["DEVBOX_TEST_OP_ITEMS"]).read_text())
if reference not in items:
    error(f'could not read secret "{reference}": item not found')
newline = "" if flags & {"--no-newline", "-n"} else "\n"
sys.stdout.write(items[reference] + newline)
