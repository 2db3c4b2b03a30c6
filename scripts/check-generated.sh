#!/usr/bin/env bash
# The flake's generated-up-to-date check: each committed example's generated tree (the single
# host's examples/basic and the fleet's examples/fleet, every slice of it) is what devbox-ctl
# makes of its inputs.
#
#   check-generated.sh SOURCE
#
# SOURCE holds examples/<name>/ (users.nix, containers.json, generated/); it is copied to a
# writable ./source first, as devbox-ctl check may write its lock beside the tree.
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 SOURCE" >&2
  exit 2
fi
cp -r "$1" source
chmod -R u+w source
cd source
checked=0
for example in examples/*/; do
  [[ -f $example/users.nix ]] || continue
  echo "devbox-ctl check: $example"
  devbox-ctl check \
    --users "$example/users.nix" \
    --containers "$example/containers.json" \
    --out "$example/generated"
  checked=$((checked + 1))
done
if [[ $checked == 0 ]]; then
  echo "no examples under $1/examples" >&2
  exit 1
fi
