"""A fleet member's declaration: the slice manifest deployed to it (/etc/devbox/manifest.json).

A member holds no config repository (docs/fleet.md). What it runs is what the control host
last deployed to it, and the slice manifest says all of it: the users, the settings and this
host's containers, each fully resolved. This module reads that file (bounded: it is root's,
but a truncated or foreign file must not become a huge read or a traceback), checks that it
is a manifest of the version this devbox-ctl writes, and turns it back into the `Desired`
the runtime verbs work from, through the same models and `resolve` as users.nix and
containers.json.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from devbox.declare import manifest, resolve
from devbox.declare.models import ContainerRecord, Policy, User
from devbox.declare.resolve import Desired
from devbox.declare.schema_errors import problems
from devbox.errors import InputError, Problem

# A slice manifest of a host at full capacity is a few hundred kilobytes.
MAX_BYTES = 16 << 20
FIX = "deploy this host again from the control host (devbox-ctl deploy HOST)"
# A manifest's container entry holds what resolve computed; these are the record's own fields.
_RECORD_FIELDS = ("name", "owner", "cpu", "memory", "syncthing", "state", "created", "stoppedAt")
_OPTIONAL_RECORD_FIELDS = ("pin", "host", "labels")


def read_bytes(path: Path) -> bytes | None:
    """The file's bytes, at most MAX_BYTES; None when there is no file."""
    try:
        with path.open("rb") as file:
            content = file.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputError([Problem(str(path), "", f"cannot be read ({exc.strerror})", FIX)]) from exc
    if len(content) > MAX_BYTES:
        raise InputError(
            [Problem(str(path), "", f"is larger than {MAX_BYTES} bytes, not a manifest", FIX)]
        )
    return content


def sha256(path: Path) -> str | None:
    """The SHA-256 of the deployed manifest's bytes (what the fleet index records), or None."""
    content = read_bytes(path)
    return None if content is None else hashlib.sha256(content).hexdigest()


def load(path: Path) -> dict[str, Any]:
    """The deployed manifest as a JSON object of this devbox-ctl's version."""
    content = read_bytes(path)
    if content is None:
        raise InputError([Problem(str(path), "", "not found: nothing was deployed here", FIX)])
    try:
        document = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError([Problem(str(path), "", f"is not JSON ({exc})", FIX)]) from exc
    if not isinstance(document, dict):
        raise InputError([Problem(str(path), "", "is not a JSON object", FIX)])
    if document.get("version") != manifest.VERSION:
        raise InputError(
            [
                Problem(
                    str(path),
                    "version",
                    f"is {document.get('version')!r}, this devbox-ctl reads version "
                    f"{manifest.VERSION}",
                    "deploy the same devbox version to the control host and this one",
                )
            ]
        )
    return document


def _section(document: dict[str, Any], key: str, source: str) -> dict[str, Any]:
    section = document.get(key, {})
    if not isinstance(section, dict):
        raise InputError([Problem(source, key, "is not a JSON object", FIX)])
    return section


def _record(entry: Any, name: str, source: str) -> dict[str, Any]:
    """containers.json's record of a manifest entry (the fields resolve did not derive)."""
    if not isinstance(entry, dict):
        raise InputError([Problem(source, f"containers.{name}", "is not a JSON object", FIX)])
    record = {key: entry[key] for key in _RECORD_FIELDS if key in entry}
    # host and labels exist only in a fleet's entries; pin may be null.
    record |= {key: entry[key] for key in _OPTIONAL_RECORD_FIELDS if entry.get(key) is not None}
    return record


def _within(prefix: str, exc: ValidationError, model: type[Any], source: str) -> list[Problem]:
    """The model's problems, with their paths inside the manifest."""
    return [
        Problem(p.file, f"{prefix}.{p.path}" if p.path else prefix, p.message, p.fix)
        for p in problems(model, exc, source)
    ]


def desired_from_manifest(document: dict[str, Any], source: str = "manifest.json") -> Desired:
    """The declaration a (slice) manifest describes: its users, settings and containers."""
    found: list[Problem] = []
    users: dict[str, User] = {}
    for name, entry in _section(document, "users", source).items():
        try:
            fields = entry if isinstance(entry, dict) else {}
            users[name] = User.model_validate(
                {"uid": fields.get("uid"), "admin": fields.get("admin", False)}
                | ({"maxContainers": fields["maxContainers"]} if "maxContainers" in fields else {})
            )
        except ValidationError as exc:
            found += _within(f"users.{name}", exc, User, source)
    try:
        policy = Policy.model_validate(_section(document, "settings", source))
    except ValidationError as exc:
        found += _within("settings", exc, Policy, source)
        policy = Policy()
    records: list[ContainerRecord] = []
    for name, entry in _section(document, "containers", source).items():
        try:
            records.append(ContainerRecord.model_validate(_record(entry, name, source)))
        except ValidationError as exc:
            found += _within(f"containers.{name}", exc, ContainerRecord, source)
    found += [
        Problem(source, f"containers.{r.name}.owner", f"{r.owner!r} is not a user here", FIX)
        for r in records
        if r.owner not in users
    ]
    if found:
        raise InputError(found)
    return resolve.resolve(users, policy, records)


def current(path: Path) -> Desired:
    """The declaration deployed to this host."""
    return desired_from_manifest(load(path), str(path))
