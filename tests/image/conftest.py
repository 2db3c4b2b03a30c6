"""Fixtures for the image tests: the entrypoint harness (entrypoint_harness.py)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from entrypoint_harness import EntrypointRunner


@pytest.fixture
def entrypoint(tmp_path: Path) -> Iterator[EntrypointRunner]:
    """An entrypoint runner with the stand-ins on PATH; stops what it started."""
    if shutil.which("jq") is None:
        if os.environ.get("DEVBOX_REQUIRE_TOOLS") == "1":
            pytest.fail("jq is required (DEVBOX_REQUIRE_TOOLS=1) but not on PATH")
        pytest.skip("jq is not on PATH; the entrypoint and its stand-ins need it")
    runner = EntrypointRunner(tmp_path)
    yield runner
    runner.close()
