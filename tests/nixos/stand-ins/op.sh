#!/usr/bin/env bash
# Stands for the 1Password CLI (op) in the NixOS VM test (tests/nixos/orchestrator.nix): the
# real one is unfree, and runNixOSTest's read-only package set refuses unfree packages. No
# 1Password account is reachable from a test VM, and the test provisions the containers'
# secrets itself, so every command fails as op does when it cannot reach an account: an
# "[ERROR] <date> <time> <message>" line on stderr and exit code 1.
set -euo pipefail
printf '[ERROR] %s no 1Password account is reachable from this test machine (op %s)\n' \
  "$(date '+%Y/%m/%d %H:%M:%S')" "${1:-}" >&2
exit 1
