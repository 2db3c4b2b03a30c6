# Evaluates the flake's outputs function with nixpkgs' lib and stand-in inputs, and returns
# the shape of the outputs as plain JSON data: which outputs exist for which systems, and
# what the nixosModules.orchestrator wrapper sets. Nothing is built and no package is
# evaluated (the stand-in package sets hold only stdenv.hostPlatform and a callPackage that
# names what it was called with). Used by
# test_flake.py:
#
#   nix-instantiate --eval --strict --json tests/nix/eval-flake.nix \
#     --arg lib 'import <nixpkgs.lib checkout>/lib'
{ lib }:
let
  flake = import ../../flake.nix;
  inherit (import ./flake-outputs.nix { inherit lib; }) outputs stubPkgs;

  names = lib.mapAttrs (_: lib.attrNames);
  wrapperOn =
    system:
    outputs.nixosModules.orchestrator {
      inherit lib;
      pkgs = stubPkgs system;
    };
  wrapper = wrapperOn "x86_64-linux";
in
{
  inherit (flake) description inputs;
  outputs = lib.attrNames outputs;
  packages = names outputs.packages;
  apps = lib.mapAttrs (_: lib.mapAttrs (_: app: app.type)) outputs.apps;
  checks = names outputs.checks;
  devShells = names outputs.devShells;
  formatter = lib.attrNames outputs.formatter;
  homeModules = lib.mapAttrs (_: toString) outputs.homeModules;
  nixosModules = lib.attrNames outputs.nixosModules;
  lib = lib.mapAttrs (_: builtins.typeOf) outputs.lib;
  orchestratorWrapper = {
    imports = map toString wrapper.imports;
    package = {
      inherit (wrapper.services.devbox.package) _type priority;
    };
    image = {
      inherit (wrapper.services.devbox.image) _type priority;
    };
  };
  # The image the wrapper gives by default, on each Linux system an orchestrator may run.
  wrapperImage = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (
    system:
    let
      image = (wrapperOn system).services.devbox.image;
    in
    {
      inherit (image) _type priority;
      isThisSystemsImage = image.content == outputs.packages.${system}.devcontainer;
    }
  );
}
