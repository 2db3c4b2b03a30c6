"""Argv templates of the fleet (config.json deployCommand, sshCommand, remoteCommand).

A template is a list of words; `{host}`, `{reach}` and `{flake}` are replaced inside words,
in one pass, never through a shell or `str.format` (a host's reach is text from users.nix).
"""

from __future__ import annotations

import re

from devbox import rules
from devbox.errors import ToolError

PLACEHOLDERS = ("{host}", "{reach}", "{flake}")
_PLACEHOLDER = re.compile(r"\{(host|reach|flake)\}")
_BRACE = re.compile(r"[{}]")


def issue(
    words: list[str], *, allowed: tuple[str, ...] = PLACEHOLDERS, needs: tuple[str, ...] = ()
) -> str | None:
    """What is wrong with an argv template, or None.

    Every word one line; placeholders only the allowed ones; at least one of `needs` (a
    command for one host must name the host somewhere).
    """
    if not words:
        return "is empty"
    for word in words:
        problem = rules.single_line(word, 4000)
        if problem is not None:
            return f"word {rules.show(word)} {problem[0]}"
        if _BRACE.search(_PLACEHOLDER.sub("", word)):
            return f"word {rules.show(word)} holds a placeholder devbox does not know"
        unknown = [f"{{{name}}}" for name in _PLACEHOLDER.findall(word)]
        unknown = [name for name in unknown if name not in allowed]
        if unknown:
            return f"word {rules.show(word)} uses {unknown[0]}, which is not known here"
    if needs and not any(name in word for word in words for name in needs):
        return f"names no host: it needs {' or '.join(needs)}"
    return None


def fill(words: list[str] | tuple[str, ...], values: dict[str, str]) -> list[str]:
    """An argv template with {host}, {reach}, {flake} replaced (whole words or inside one).

    One pass per word: a value that itself holds "{host}" stays as it is. A placeholder
    without a value is a ToolError (a validated template names only these three).
    """

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise ToolError(f"no value for {{{name}}} in this command template")
        return values[name]

    return [_PLACEHOLDER.sub(value, word) for word in words]
