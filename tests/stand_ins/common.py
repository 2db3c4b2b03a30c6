"""What every host stand-in shares: recording its call, and answering by the test's rules.

A call is appended to $DEVBOX_TEST_CALLS as one JSON line: the program's name, its argv, and
of its standard input only the SHA-256 and length (so a test can prove a secret went through
stdin without the secret being written anywhere); also its working directory and the
variables of its environment that choose what a program reads or runs (WATCHED: never one
that holds a secret), so a test can prove whose environment a program got. Rules in $DEVBOX_TEST_RULES/<name>.json
override the default behaviour: the first rule whose words all appear in argv answers.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

WATCHED = (
    "PATH",
    "HOME",
    "NIX_PATH",
    "NIX_CONF_DIR",
    "NIX_CONFIG",
    "NIX_USER_CONF_FILES",
    "GIT_DIR",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_PARAMETERS",
    "LD_PRELOAD",
    "DEVBOX_DEBUG",
)


def record(name: str, **details: Any) -> bytes:
    """Log this call (with what the stand-in adds); return what came on stdin."""
    stdin = b"" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read()
    entry = {
        "name": name,
        "argv": sys.argv[1:],
        "stdin_sha256": hashlib.sha256(stdin).hexdigest() if stdin else None,
        "stdin_bytes": len(stdin),
        "cwd": str(Path.cwd()),
        "environment": {key: os.environ[key] for key in WATCHED if key in os.environ},
        **details,
    }
    with Path(os.environ["DEVBOX_TEST_CALLS"]).open("a") as log:
        log.write(json.dumps(entry) + "\n")
    return stdin


def ruled(name: str) -> None:
    """Answer by the first matching rule, if any (and exit)."""
    path = Path(os.environ.get("DEVBOX_TEST_RULES", "/nonexistent")) / f"{name}.json"
    rules: list[dict[str, Any]] = json.loads(path.read_text()) if path.is_file() else []
    for rule in rules:
        if all(word in sys.argv[1:] for word in rule.get("match", [])):
            sys.stdout.write(rule.get("stdout", ""))
            sys.stderr.write(rule.get("stderr", ""))
            sys.exit(rule.get("exit", 0))
