#!/usr/bin/env bash
# The flake's Quadlet check (checks.x86_64-linux.quadlet): podman's own generator accepts every
# generated unit, per user as the NixOS module installs them.
#
#   check-quadlet.sh USERS_DIR QUADLET
#
# USERS_DIR is generated/users (one folder per uid); QUADLET is podman's quadlet binary.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 USERS_DIR QUADLET" >&2
  exit 2
fi
users=$1
quadlet=$2
# Quadlet -user reads the caller's configuration folders; a build has no home.
HOME=$(mktemp -d)
export HOME

found=0
for dir in "$users"/*/; do
  [[ -d $dir ]] || continue
  found=1
  echo "quadlet: $dir"
  QUADLET_UNIT_DIRS=$dir "$quadlet" -dryrun -user >/dev/null
done
if [[ $found == 0 ]]; then
  echo "no generated units under $users" >&2
  exit 1
fi
