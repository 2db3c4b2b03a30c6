#!/usr/bin/env bash
# The whole test suite: set up (see scripts/setup.sh), lint, type-check, then pytest with every
# real tool required (DEVBOX_REQUIRE_TOOLS=1: a missing tool fails instead of skipping).
# Extra arguments go to pytest. Safe to run twice.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=setup.sh
source "$repo/scripts/setup.sh"
cd "$repo"

echo "==> ruff"
.venv/bin/ruff format --check --quiet generator tests bench
.venv/bin/ruff check --quiet generator tests bench
echo "==> mypy --strict"
(cd generator && ../.venv/bin/mypy --no-error-summary)
echo "==> pytest"
DEVBOX_REQUIRE_TOOLS=1 .venv/bin/pytest -n 2 "$@"
