# What the flake's Python check (checks.x86_64-linux.pytest-nix, the devbox-ctl package) is
# made of, with nixpkgs' lib and stub-pkgs.nix as nixpkgs: its arguments as the flake gives
# them to buildPythonApplication (source, sourceRoot, check inputs, env, check phase), and the
# stub store paths that tests/nix/sandbox/check.nix replaces with real ones. The source is
# real: lib.fileset.toSource copies exactly the files the flake selects into the store, with
# the store's modes (Nix >= 2.14). Used by tests/nix/sandbox/check.nix.
{ lib }:
let
  inherit (import ./flake-with-stub-pkgs.nix { inherit lib; }) outputs nixpkgs;
  pkgs = nixpkgs.legacyPackages.x86_64-linux;
  package = outputs.packages.x86_64-linux.devbox-ctl;
in
{
  inherit (package) arguments;
  checkIsThePackage = outputs.checks.x86_64-linux.pytest-nix.outPath == package.outPath;
  # The stub paths in the arguments, for the real ones.
  nixpkgs = nixpkgs.outPath;
  quadlet = "${pkgs.podman}/libexec/podman/quadlet";
  inherit (pkgs.python3) sitePackages;
  # Which check inputs are Python packages (on PYTHONPATH) and which are programs (on PATH).
  pythonPackages = builtins.attrNames pkgs.python3.pkgs;
}
