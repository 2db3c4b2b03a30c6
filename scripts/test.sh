#!/usr/bin/env bash
# The whole test suite: set up with the test suite's toolchain (scripts/setup.sh --tests: QEMU,
# debootstrap, the Nix for lib.fileset, the stdenv tools, ...), then scripts/check.sh (ruff, mypy
# --strict, pytest) with every real tool required (DEVBOX_REQUIRE_TOOLS=1: a missing tool
# fails instead of skipping), then the flake's check in Nix's own sandbox (marker `sandbox`:
# the fast suite once more, as the package's check phase runs it in a Nix build), then the
# host test in a virtual machine (tests/system/, marker `system`) on its own: it keeps both
# cores busy for about 20 minutes, so it runs after the fast suite, not beside it. Extra
# arguments go to pytest instead, and only that pytest runs (e.g. `-m system`, `-m sandbox`,
# `-k snapshot`). Safe to run twice.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
setup_tests=1
# shellcheck source-path=SCRIPTDIR source=setup.sh
source "$repo/scripts/setup.sh"
cd "$repo"

export PATH="$repo/.venv/bin:$PATH" DEVBOX_REQUIRE_TOOLS=1
if [ "$#" -gt 0 ]; then
  exec bash scripts/check.sh -n 2 "$@"
fi
# The guest image is built (or found in its cache) while the fast suite runs: debootstrap
# mostly waits for downloads. build-base.sh holds a lock, so the host test waits for this build
# instead of starting another; if it failed, the host test builds again and says why.
base_log=$(mktemp)
bash tests/system/build-base.sh >/dev/null 2>"$base_log" &
base=$!
status=0
bash scripts/check.sh -n 2 || status=$?
wait "$base" || { echo "the guest image build failed:"; tail -n 20 "$base_log"; }
rm -f "$base_log"
[ "$status" -eq 0 ] || exit "$status"
echo "==> the flake's check in Nix's own sandbox (tests/nix/test_check_sandbox.py)"
pytest -p no:xdist -m sandbox tests/nix/test_check_sandbox.py
echo "==> the host test (tests/system/, a Debian 13 virtual machine)"
pytest -p no:xdist -m system tests/system/test_system.py
