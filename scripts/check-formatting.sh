#!/usr/bin/env bash
# The flake's formatting check (checks.x86_64-linux.formatting), run in the root of the tree
# it checks: nixfmt (RFC style) for Nix, ruff for Python, shellcheck for shell.
set -euo pipefail

# The golden tests' inputs are data (some malformed on purpose), not code.
find . -name '*.nix' -not -path './tests/golden/*' -print0 | xargs -0 -r nixfmt --check
ruff format --check --no-cache .
# Shell files: *.sh, and scripts without the suffix that start with a sh/bash #!.
find . -type f \( -name '*.sh' -o -path './scripts/*' -o -path './.ci/*' \) -print0 |
  while IFS= read -r -d "" file; do
    first=""
    IFS= read -r first <"$file" || true
    if [[ $file == *.sh || $first =~ ^\#!.*(/|env\ )(ba)?sh ]]; then
      printf '%s\0' "$file"
    fi
  done | xargs -0 -r shellcheck
