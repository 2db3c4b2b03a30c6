"""Reading the two inputs to plain data: users.nix through Nix, containers.json as strict JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devbox.errors import InputError, Problem
from devbox.tools import nix


@dataclass(frozen=True)
class Source:
    """An input file: where it is, and how messages name it (as the user gave it)."""

    path: Path
    display: str

    @classmethod
    def of(cls, path: Path) -> Source:
        """A source named in messages by the path it was given as."""
        return cls(path, str(path))


def _missing(source: Source, fix: str) -> InputError:
    return InputError([Problem(source.display, "", "not found", fix)])


def read_users(source: Source, cache: Path | None = None) -> Any:
    """The value of users.nix, evaluated by Nix (once per content, with a cache file)."""
    if not source.path.is_file():
        raise _missing(source, "create it (see examples/basic/users.nix) or pass --users FILE")
    try:
        return nix.eval_file_json(source.path, cache)
    except nix.NixEvalError as exc:
        text = str(exc)
        fix = ""
        if "cannot convert a function to JSON" in text:
            fix = "users.nix must be a plain attribute set: no function, no import of nixpkgs"
        raise InputError(
            [Problem(source.display, "", f"Nix could not evaluate it:\n{text}", fix)]
        ) from exc


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"the key {json.dumps(key)} appears twice in one object")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(text: str, display: str) -> Any:
    """Parse JSON strictly: no duplicate keys (a silent overwrite), no NaN or Infinity."""
    try:
        return json.loads(
            text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
        )
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise InputError(
            [Problem(display, "", f"{where}: {exc.msg}", "fix the JSON syntax")]
        ) from exc
    except ValueError as exc:
        raise InputError([Problem(display, "", str(exc), "fix the JSON")]) from exc


def read_containers(source: Source) -> Any:
    """The parsed content of containers.json."""
    if not source.path.is_file():
        raise _missing(
            source, 'create it with {"version": 1, "containers": []} or pass --containers FILE'
        )
    try:
        text = source.path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            [Problem(source.display, "", "is not UTF-8 text", "save it as UTF-8")]
        ) from exc
    return parse_json(text, source.display)
