"""Shell completion of container and host names, as the caller may see them.

Completion runs at every Tab, as the caller, before any verb: it reads the host's declaration
cheaply (config.json and the generated manifests, JSON only: no Nix, no podman, no pydantic)
and never fails. A file the caller may not read, or one that is not what it should be, means
nothing to complete, never a traceback on the terminal. Users are offered their own
containers, admins and root every one, as `list` shows them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from click.shell_completion import CompletionItem

if TYPE_CHECKING:
    import click

# A manifest larger than this is not read for a completion (the example's is a few KiB).
MOST_BYTES = 16 << 20
# What a broken or unreadable file gives: nothing to offer.
UNREADABLE = (OSError, ValueError, TypeError, AttributeError, KeyError)


def config_file() -> Path:
    """hostconfig.locate(privileged=False), without importing pydantic at every Tab.

    tests/test_cli_voice.py holds the two to the same answer.
    """
    return Path(os.environ.get("DEVBOX_CONFIG") or "/etc/devbox/config.json")


def config_document() -> dict[str, Any]:
    """config.json (config_file) as JSON, read bounded; {} when it is not an object.

    Raises one of UNREADABLE when it cannot be read.
    """
    return _document(config_file())


def _document(path: Path) -> dict[str, Any]:
    """A JSON object from a file, read bounded; {} when it is not one."""
    with path.open("rb") as file:
        content = file.read(MOST_BYTES + 1)
    if len(content) > MOST_BYTES:
        return {}
    document = json.loads(content)
    return document if isinstance(document, dict) else {}


def _manifests() -> tuple[list[dict[str, Any]], list[str]]:
    """The single-host manifests that declare this host's containers, and the fleet's hosts."""
    config = _document(config_file())
    if config.get("role") == "member" or not config.get("configRepo"):
        deployed = config.get("deployedManifest") or "/etc/devbox/manifest.json"
        return [_document(Path(deployed))], []
    out = Path(config["configRepo"]) / str(config.get("generatedDir") or "devbox/generated")
    top = _document(out / "manifest.json")
    hosts = top.get("fleet", {}).get("hosts") if isinstance(top.get("fleet"), dict) else None
    if not isinstance(hosts, dict):
        return [top], []
    slices = [_document(out / "hosts" / host / "manifest.json") for host in sorted(hosts)]
    return slices, sorted(hosts)


def _visible(manifests: list[dict[str, Any]]) -> list[str]:
    """The containers the caller may see: their own, or every one for an admin or root."""
    uid = os.getuid()
    users: dict[str, Any] = {}
    containers: dict[str, Any] = {}
    for manifest in manifests:
        users |= manifest.get("users") or {}
        containers |= manifest.get("containers") or {}
    me = next((name for name, user in users.items() if user.get("uid") == uid), None)
    every = uid == 0 or (me is not None and users[me].get("admin") is True)
    return sorted(name for name, entry in containers.items() if every or entry.get("owner") == me)


def _offered(names: list[str], incomplete: str) -> list[CompletionItem]:
    return [CompletionItem(name) for name in names if name.startswith(incomplete)]


def containers(
    _ctx: click.Context, _param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The shell_complete of a NAME argument: the declared containers the caller may see."""
    try:
        return _offered(_visible(_manifests()[0]), incomplete)
    except UNREADABLE:
        return []


def hosts(_ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """The shell_complete of a HOST argument or option: the fleet's declared hosts."""
    try:
        return _offered(_manifests()[1], incomplete)
    except UNREADABLE:
        return []
