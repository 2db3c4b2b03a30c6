#!/usr/bin/env bash
# The flake's generated-up-to-date check: the committed example tree is what devbox-ctl makes
# of its inputs.
#
#   check-generated.sh SOURCE
#
# SOURCE holds examples/basic/ (users.nix, containers.json, generated/); it is copied to a
# writable ./source first, as devbox-ctl check may write its lock beside the tree.
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 SOURCE" >&2
  exit 2
fi
cp -r "$1" source
chmod -R u+w source
cd source
devbox-ctl check \
  --users examples/basic/users.nix \
  --containers examples/basic/containers.json \
  --out examples/basic/generated
