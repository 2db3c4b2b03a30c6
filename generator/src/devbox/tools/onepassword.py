"""The Tailscale auth key, from 1Password, with the root-only service-account token.

`op read op://<vault>/<user>-tailscale-authkey/<field>` runs with the token in its
environment (OP_SERVICE_ACCOUNT_TOKEN), read from the file the NixOS module names: never from
a user's environment (a vault-wide token there would let anyone read everyone's keys), never
in argv. The key comes back on stdout, is checked to look like a Tailscale key, and is handed
on by the caller through stdin only.
"""

from __future__ import annotations

import re
from pathlib import Path

from devbox.errors import ToolError
from devbox.tools import process

# Auth keys (tskey-auth-…) and OAuth client secrets (tskey-client-…), which Tailscale also
# accepts as auth keys for tagged devices.
KEY = re.compile(r"tskey-(?:auth|client)-[A-Za-z0-9]+-[A-Za-z0-9]+")


def reference(vault: str, owner: str, field: str) -> str:
    """The 1Password secret reference of an owner's auth key."""
    return f"op://{vault}/{owner}-tailscale-authkey/{field}"


def read_token(path: Path | None) -> str:
    """The service-account token from its root-only file."""
    if path is None:
        raise ToolError(
            "no 1Password service-account token is configured",
            hint="set services.devbox.opTokenFile to a root-only file holding the token",
        )
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ToolError(f"cannot read the 1Password token file {path}: {exc.strerror}") from exc
    if not token:
        raise ToolError(f"the 1Password token file {path} is empty")
    return token


def read_auth_key(vault: str, owner: str, field: str, token_file: Path | None) -> str:
    """The owner's Tailscale auth key."""
    token = read_token(token_file)
    ref = reference(vault, owner, field)
    result = process.run(
        ["op", "read", "--no-newline", ref],
        env={"OP_SERVICE_ACCOUNT_TOKEN": token},
        timeout=60,
    )
    if not result.ok:
        raise ToolError(
            f"1Password could not read {ref}: {result.stderr.strip()}",
            hint=f"create the item {owner}-tailscale-authkey with the field {field} in the "
            f"vault {vault}, holding a reusable, tagged Tailscale auth key",
        )
    key = result.stdout.strip()
    if not KEY.fullmatch(key):
        raise ToolError(
            f"{ref} does not hold a Tailscale auth key (expected tskey-auth-…)",
            hint="put an auth key from the Tailscale admin console (Settings → Keys) there",
        )
    return key
