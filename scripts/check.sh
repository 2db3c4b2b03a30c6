#!/usr/bin/env bash
# What CI and the flake's check (pytest-nix) run, from the repository root, with the tools
# already on PATH (scripts/test.sh installs them; the flake declares them as check inputs):
# the formatter check, the linter, mypy --strict, then pytest with the given arguments.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "==> ruff"
ruff format --check --quiet --no-cache generator tests bench
ruff check --quiet --no-cache generator tests bench
echo "==> mypy --strict"
(cd generator && mypy --no-error-summary)
echo "==> pytest"
pytest "$@"
