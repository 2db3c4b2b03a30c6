#!/bin/bash
# The guest's entry point for tests/system/bench_image.py: bench_image.py puts this file on its
# own test disk as guest/boot.sh, which the cached guest's devbox-test.service runs after
# multi-user.target (guest/setup-base.sh). It runs guest/image_designs.py once, keeps the boot's
# journal on the test disk for the host and powers off (the unit's ExecStopPost).
set -uo pipefail
results=/mnt/test/results
mkdir -p "$results"
# As guest/boot.sh does: NixOS mounts the store onto itself.
mountpoint -q /nix/store || mount --bind /nix/store /nix/store
echo "[devbox-test] image designs: starting"
timeout "${DEVBOX_BENCH_TIMEOUT:-2400}" python3 /mnt/test/guest/image_designs.py
echo "[devbox-test] image designs: exited $?"
journalctl -b --no-pager -o short-monotonic >"$results/journal.txt" 2>&1
sync
