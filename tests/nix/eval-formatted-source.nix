# The source the flake's formatting check formats: the flake of the tree at `flakeDir`
# (a copy of this repository with files git ignores added), evaluated with stub-pkgs.nix and
# a runCommand that keeps its script. lib.fileset.toSource is the real one, so evaluating
# with a writable store (`--store DIR`) copies the selected files there; the script names
# the store path. Used by test_flake.py:
#
#   nix-instantiate --store DIR --read-write-mode --eval --strict --json tests/nix/eval-formatted-source.nix \
#     --arg lib 'import <nixpkgs.lib checkout>/lib' --arg flakeDir /abs/copy
{ lib, flakeDir }:
let
  inherit
    (import ./flake-with-stub-pkgs.nix {
      inherit lib flakeDir;
      extraPkgs = _system: {
        runCommand = name: _env: script: { inherit name script; };
      };
    })
    outputs
    ;
in
outputs.checks.x86_64-linux.formatting.script
