# shellcheck shell=bash
# The derivation's attributes (src, out, ...) are set by Nix in the environment.
# shellcheck disable=SC2154
# What a build may do in Nix's sandbox, tried and written down as `name: outcome` lines in
# $out (probe.nix). Every attempt that a NixOS builder is refused must say "refused".
set -u
report() { echo "$1: $2" >>report; }
append() { echo x >>"$1"; }
attempt() { # NAME COMMAND... → "allowed" or "refused"
  local name=$1
  shift
  if "$@" 2>/dev/null; then report "$name" allowed; else report "$name" refused; fi
}

report uid "$(id -u)"
while read -r key value; do
  [ "$key" = CapEff: ] && report effective-capabilities "$value"
done </proc/self/status
report home "$HOME"
report tmpdir "$TMPDIR"
report build-top "$NIX_BUILD_TOP"
report cwd "$PWD"
report bin "$(cd /bin && echo *)"
report root "$(cd / && echo *)"
report interfaces "$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\n' ' ')"

# The store: a source input is read-only, with the store's modes.
report src-file-mode "$(stat -c %a "$src/file")"
report src-dir-mode "$(stat -c %a "$src/folder")"
attempt write-store-file append "$src/file"
attempt create-in-store-dir touch "$src/folder/new"
cp -pr "$src" copy
report copied-file-mode "$(stat -c %a copy/file)"
attempt write-copied-file append copy/file
attempt create-in-copied-dir touch copy/folder/new

# No CAP_DAC_OVERRIDE: a file of its own made read-only cannot be written again; no chown.
echo secret >own
chmod 0400 own
attempt write-own-0400-file append own
attempt chown-to-root chown 0:0 own
attempt chown-to-other chown 12345 own

# The machine's programs and home are not there.
if [ -e /usr/bin ]; then report usr-bin present; else report usr-bin absent; fi
attempt write-home mkdir -p "$HOME"
attempt write-tmpdir touch "$TMPDIR/x"

cp report "$out"
