"""How counts read in messages: "1 file differs", "2 files differ"."""

from __future__ import annotations


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """`number` with `noun` in the singular or the plural (`noun + "s"` unless given)."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"


def files_differ(number: int) -> str:
    """A count of files with its verb: "1 file differs", "2 files differ"."""
    return f"{counted(number, 'file')} {'differs' if number == 1 else 'differ'}"
