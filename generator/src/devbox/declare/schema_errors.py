"""Turning pydantic's validation errors into problems people can act on.

Each error becomes a `Problem` with the field path as users write it (`containers[3].name`,
`users.alice.uid`), a message that shows the offending value, and a fix; an unknown field
gets the nearest known name as a suggestion.
"""

from __future__ import annotations

import difflib
import json
import re
import types
import typing
from typing import Any

import pydantic

from devbox import rules
from devbox.errors import Problem

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")

_TYPE_MESSAGES = {
    "string_type": ("is not a string", "write it in double quotes"),
    "bool_type": ("is not true or false", "write true or false, without quotes"),
    "int_type": ("is not a whole number", "write a whole number without quotes"),
    "list_type": ("is not a list", "write a list, e.g. [ 72 24 ]"),
    "dict_type": ("is not a set of fields", "write it as { … }"),
    "model_type": ("is not a set of fields", "write it as { … }"),
    "datetime_type": ("is not a time", 'write it like "2026-11-26T09:30:00Z"'),
    "date_type": ("is not a day", 'write it like "2026-12-24"'),
}


def format_path(loc: tuple[int | str, ...]) -> str:
    """A field path as users write it: containers[3].name, users.alice.uid, users."Bad"."""
    text = ""
    for item in loc:
        if isinstance(item, int):
            text += f"[{item}]"
        else:
            name = item if _IDENTIFIER.fullmatch(item) else json.dumps(item, ensure_ascii=False)
            text += f".{name}" if text else name
    return text


def _field_type(model: type[pydantic.BaseModel], alias: str) -> Any:
    for name, info in model.model_fields.items():
        if alias in (name, info.alias):
            return info.annotation
    return None


def _unwrap(annotation: Any, item: int | str) -> Any:
    """The type one step into a container type (list element, dict value, optional)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _unwrap(args[0], item)
    if origin is list and isinstance(item, int):
        return args[0]
    if origin is dict and isinstance(item, str):
        return args[1]
    return None


def _model_at(root: type[pydantic.BaseModel], loc: tuple[int | str, ...]) -> Any:
    current: Any = root
    for item in loc:
        if isinstance(current, type) and issubclass(current, pydantic.BaseModel):
            current = _field_type(current, str(item))
        else:
            current = _unwrap(current, item)
        args = [a for a in typing.get_args(current) if a is not type(None)]
        if typing.get_origin(current) in (typing.Union, types.UnionType) and len(args) == 1:
            current = args[0]
    return current


def _unknown_field(root: type[pydantic.BaseModel], loc: tuple[int | str, ...]) -> tuple[str, str]:
    model = _model_at(root, loc[:-1])
    known: list[str] = []
    if isinstance(model, type) and issubclass(model, pydantic.BaseModel):
        known = sorted(info.alias or name for name, info in model.model_fields.items())
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    if close:
        return ("is not a known field", f"did you mean {close[0]}?")
    return ("is not a known field", f"remove it (known fields: {', '.join(known)})")


def _describe(root: type[pydantic.BaseModel], error: Any) -> tuple[str, str]:
    kind = error["type"]
    value = error.get("input")
    if kind == "devbox":
        return (error["msg"], error["ctx"]["fix"])
    if kind == "missing":
        return ("is required", "add it")
    if kind == "extra_forbidden":
        return _unknown_field(root, error["loc"])
    if kind == "literal_error":
        expected = error["ctx"]["expected"].replace("'", '"')
        return (f"{rules.show(value)} is not one of {expected}", f"use {expected}")
    if kind in _TYPE_MESSAGES:
        message, fix = _TYPE_MESSAGES[kind]
        return (f"{rules.show(value)} {message}", fix)
    return (str(error["msg"]), "")


def problems(
    root: type[pydantic.BaseModel], exc: pydantic.ValidationError, file: str
) -> list[Problem]:
    """One problem per validation error of a model's input."""
    found = []
    for error in exc.errors():
        message, fix = _describe(root, error)
        found.append(Problem(file, format_path(error["loc"]), message, fix))
    return found
