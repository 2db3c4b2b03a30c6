#!/usr/bin/env bash
# The quick start: set up what the generator needs (scripts/setup.sh, without the test suite's
# toolchain), then run the generator on the bundled example in a scratch copy, build/example
# (examples/basic's users.nix and containers.json): print the plan, write the generated tree,
# and check it. Safe to run twice: a build/example that holds anything examples/basic does not
# (an edited input, a file of yours, a generated tree of your edits) is yours, and is left as
# it is, saying so; --reset replaces it with a fresh copy.
#   scripts/quickstart.sh [--reset]
set -euo pipefail
reset=0
case "$#:${1:-}" in
  0:) ;;
  1:--reset) reset=1 ;;
  *)
    echo "usage: scripts/quickstart.sh [--reset]" >&2
    exit 2
    ;;
esac
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=setup.sh
source "$repo/scripts/setup.sh"

example="$repo/examples/basic"
work="$repo/build/example"
# What build/example holds that examples/basic does not, or holds otherwise: the user's work.
# A file of examples/basic missing from it (a first run stopped before generate) is not.
yours() {
  diff -rq "$example" "$work" 2>&1 | grep -v -F -e "Only in $example: " -e "Only in $example/" || true
}
if [ -e "$work" ] && [ "$reset" = 0 ]; then
  edits=$(yours)
  if [ -n "$edits" ]; then
    echo
    echo "build/example holds your work, so it is left as it is:"
    printf '%s\n' "$edits" | sed "s|$repo/||g; s|^|    |"
    echo "To start again from examples/basic (your changes there are lost):"
    echo "    scripts/quickstart.sh --reset"
    exit 0
  fi
fi
if [ "$reset" = 1 ]; then
  rm -rf "$work"
fi
mkdir -p "$work"
cp "$example/users.nix" "$example/containers.json" "$work/"
cd "$work"
echo
echo "\$ devbox-ctl plan        # in build/example: examples/basic's users.nix and containers.json"
"$repo/.venv/bin/devbox-ctl" plan || [ $? -eq 1 ] # 1: changes pending, as expected here
echo
echo "\$ devbox-ctl generate"
"$repo/.venv/bin/devbox-ctl" generate
echo
echo "\$ devbox-ctl check"
"$repo/.venv/bin/devbox-ctl" check
echo
echo "The generated tree is in build/example/generated; the committed one for the example"
echo "is examples/basic/generated. Try: cat build/example/generated/users/1001/devbox-web.container"
echo "Edit build/example's users.nix or containers.json and run devbox-ctl plan and generate"
echo "there: a rerun of scripts/quickstart.sh keeps your edits (--reset starts again)."
