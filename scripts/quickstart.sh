#!/usr/bin/env bash
# The quick start: set everything up, then run the generator on the bundled example
# (examples/basic) in a scratch copy under build/: print the plan, write the generated tree,
# and check it. Safe to run twice.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=setup.sh
source "$repo/scripts/setup.sh"

work="$repo/build/example"
rm -rf "$work"
mkdir -p "$work"
cp "$repo/examples/basic/users.nix" "$repo/examples/basic/containers.json" "$work/"
cd "$work"
echo
echo "\$ devbox-ctl plan        # in build/example, a copy of examples/basic"
"$repo/.venv/bin/devbox-ctl" plan || [ $? -eq 1 ]   # 1: changes pending, as expected here
echo
echo "\$ devbox-ctl generate"
"$repo/.venv/bin/devbox-ctl" generate
echo
echo "\$ devbox-ctl check"
"$repo/.venv/bin/devbox-ctl" check
echo
echo "The generated tree is in build/example/generated; the committed one for the example"
echo "is examples/basic/generated. Try: cat build/example/generated/users/1001/devbox-web.container"
