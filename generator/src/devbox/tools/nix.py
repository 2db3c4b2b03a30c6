"""One function per Nix command devbox runs, and the cache of users.nix's evaluation."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from devbox import write
from devbox.errors import ToolError
from devbox.tools import process

CACHE_VERSION = 1
_CACHE_MOST = 4 << 20  # bytes read of a cache file; users.nix's value is far smaller
# Words whose presence makes an evaluation depend on more than the file: the clock and the
# environment (`builtins.getEnv`, also reached as `__getEnv`).
_IMPURE = ("currentTime", "getEnv")
# This devbox: another version's cache is not trusted (its store path on NixOS).
_DEVBOX = str(Path(__file__).resolve().parent.parent)


class NixEvalError(Exception):
    """Nix could not evaluate a file; the message is Nix's own."""


def _evaluate(path: Path, *options: str, env: dict[str, str] | None = None) -> Any:
    argv = ["nix-instantiate", "--eval", "--strict", "--json", *options, str(path)]
    result = process.run(argv, env=env)
    if not result.ok:
        raise NixEvalError(result.stderr.strip() or f"nix-instantiate exited {result.returncode}")
    return json.loads(result.stdout)


def eval_file_json(path: Path, cache: Path | None = None) -> Any:
    """Evaluate a Nix file that needs no inputs (like users.nix) to its JSON value.

    With `cache` (a file in root's state directory), a self-contained file (below) is
    evaluated once per content and Nix: its value is kept in `cache` and read back while
    neither changed, with no Nix run.
    """
    if cache is None:
        return _evaluate(path)
    key = _cache_key(path)
    if key is not None:
        kept = _read_cache(cache, key)
        if kept is not None:
            return kept[0]
    value = _evaluate(path)
    if key is not None and _self_contained(path, key, value):
        _write_cache(cache, key, value)
    return value


def _cache_key(path: Path) -> dict[str, Any] | None:
    """What the value of a self-contained file depends on: its bytes, this Nix and devbox.

    None when it cannot be known (the file or Nix cannot be read): no cache then.
    """
    try:
        content = path.read_bytes()
        nix = Path(process.find("nix-instantiate")).resolve()
        binary = nix.stat()
    except (OSError, ToolError):
        return None
    if any(word.encode() in content for word in _IMPURE):
        return None
    return {
        "version": CACHE_VERSION,
        "devbox": _DEVBOX,
        "file": str(path.resolve()),
        "sha256": hashlib.sha256(content).hexdigest(),
        # On NixOS a new Nix is a new store path; elsewhere its file changes.
        "nix": [str(nix), binary.st_size, binary.st_mtime_ns, binary.st_ino],
    }


def _self_contained(path: Path, key: dict[str, Any], value: Any) -> bool:
    """Whether the file's value depends on its bytes alone.

    It does when Nix in restricted mode, with only this file readable and no search path,
    gives the same value.
    """
    resolved = Path(key["file"])
    try:
        alone = _evaluate(
            resolved,
            *("--option", "restrict-eval", "true", "-I", f"devbox-users={resolved}"),
            env={"NIX_PATH": ""},
        )
    except (NixEvalError, ValueError):
        return False  # it imports or reads another file, or a search path: evaluated each time
    return bool(alone == value) and hashlib.sha256(path.read_bytes()).hexdigest() == key["sha256"]


def _read_bounded(cache: Path) -> bytes | None:
    """The cache file's bytes if it is root's alone and not too large; else None.

    Root's alone: a regular file, not a link, owned by this user, writable by no group or other.
    """
    try:
        fd = os.open(cache, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        trusted = (
            stat.S_ISREG(info.st_mode)
            and info.st_uid == os.geteuid()
            and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        )
        data = os.read(fd, _CACHE_MOST + 1) if trusted else b""
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if 0 < len(data) <= _CACHE_MOST else None


def _read_cache(cache: Path, key: dict[str, Any]) -> tuple[Any] | None:
    """The kept value for this key, or None.

    A cache that is missing, unreadable, not root's alone, partial, of another version or of
    another key is never used.
    """
    data = _read_bounded(cache)
    try:
        document = json.loads(data) if data is not None else None
    except ValueError:
        return None
    if not isinstance(document, dict) or document.get("key") != key or "value" not in document:
        return None
    return (document["value"],)


def _write_cache(cache: Path, key: dict[str, Any], value: Any) -> None:
    """Keep the value (atomic, root's alone); a cache that cannot be written is no error."""
    try:
        cache.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        document = json.dumps({"key": key, "value": value}, sort_keys=True)
        write.write_file(cache, document.encode(), mode=0o600)
    except OSError:
        return
