"""Runs `devbox-ctl ARGS…` with devbox's clock (devbox.clock.now) moved to a given time.

The host test's way to let the real cleanup service (devbox-cleanup.service, its unit, PATH,
sandbox and state) act days later without waiting for them: a drop-in replaces only its
ExecStart with this, which patches the injectable clock and runs the same devbox-ctl.

usage: clock.py NOW DEVBOX_LIB ARGS...   (NOW: 2026-12-12T04:00:00Z)
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

now = datetime.strptime(sys.argv[1], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
sys.path.insert(0, sys.argv[2])

from devbox import clock  # noqa: E402 - the path to devbox is an argument
from devbox.cli import main  # noqa: E402

clock.now = lambda: now
sys.exit(main(sys.argv[3:]))
