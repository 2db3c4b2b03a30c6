#!/bin/bash
# The guest's entry point (devbox-test.service, after multi-user.target): runs the scenario for
# this boot, keeps the boot's journal on the test disk for the host, and powers off (the unit's
# ExecStopPost). The boot number comes from the test disk: 1 on the first boot, 2 after it.
set -uo pipefail
results=/mnt/test/results
mkdir -p "$results"
boot=1
[[ -f $results/boot1.json ]] && boot=2
bench=()
[[ -f /mnt/test/bench ]] && bench=(--bench)
# NixOS mounts the store onto itself (boot.readOnlyNixStore, read-only there), so a sandboxed
# unit that sees it read-only (the cleanup unit's ProtectSystem=strict) can have root's Nix
# remount it writable for itself (Nix's LocalStore::makeStoreWritable), which needs a mount
# point. Here it stays writable outside such units: the test's stand-in for the NixOS build
# writes store paths.
mountpoint -q /nix/store || mount --bind /nix/store /nix/store
echo "[devbox-test] boot $boot starting the scenario"
timeout "${DEVBOX_SCENARIO_TIMEOUT:-3000}" python3 /mnt/test/guest/scenario.py "$boot" "${bench[@]}"
echo "[devbox-test] scenario exited $?"
journalctl -b --no-pager -o short-monotonic >"$results/journal-boot$boot.txt" 2>&1
for user in alice bob; do
	uid=$(id -u "$user" 2>/dev/null) || continue
	journalctl -b --no-pager _UID="$uid" -o short-monotonic >"$results/journal-boot$boot-$user.txt" 2>&1
done
sync
