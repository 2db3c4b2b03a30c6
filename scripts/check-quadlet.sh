#!/usr/bin/env bash
# The flake's Quadlet check (checks.x86_64-linux.quadlet): podman's own generator accepts every
# generated unit, per user as the NixOS module installs them.
#
#   check-quadlet.sh USERS_DIR... QUADLET
#
# Each USERS_DIR is a generated/users (one folder per uid): a single host's, or a fleet
# slice's (generated/hosts/<host>/users); QUADLET is podman's quadlet binary.
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: $0 USERS_DIR... QUADLET" >&2
  exit 2
fi
quadlet=${*: -1}
# Quadlet -user reads the caller's configuration folders; a build has no home.
HOME=$(mktemp -d)
export HOME

found=0
for users in "${@:1:$#-1}"; do
  for dir in "$users"/*/; do
    [[ -d $dir ]] || continue
    found=1
    echo "quadlet: $dir"
    QUADLET_UNIT_DIRS=$dir "$quadlet" -dryrun -user >/dev/null
  done
done
if [[ $found == 0 ]]; then
  echo "no generated units under ${*:1:$#-1}" >&2
  exit 1
fi
