#!/usr/bin/env bash
# The whole test suite: set up (see scripts/setup.sh), then scripts/check.sh (ruff, mypy
# --strict, pytest) with every real tool required (DEVBOX_REQUIRE_TOOLS=1: a missing tool
# fails instead of skipping). Extra arguments go to pytest. Safe to run twice.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=setup.sh
source "$repo/scripts/setup.sh"
cd "$repo"

PATH="$repo/.venv/bin:$PATH" DEVBOX_REQUIRE_TOOLS=1 bash scripts/check.sh -n 2 "$@"
