# NixOS VM test of the orchestrator module (nixos/orchestrator.nix), wired by the flake as
# checks.x86_64-linux.orchestrator-vm.
#
# One user, alice, with two containers, alpha and beta, from a tiny image built here. The
# generated trees come from orchestrator/containers-{base,changed,removed}.json (kept up to date
# by tests/nix/test_orchestrator_module.py); the machine boots with "base" and switches, with
# `switch-to-configuration test`, to the specialisations "changed" (alpha's memory raised) and
# "removed" (beta gone). It asserts:
# - after boot, both containers run, in alice's user manager, as alice;
# - after "changed", alpha was restarted with the new limit and beta kept its start;
# - after "removed", beta is stopped (its volume kept) and alpha kept its start;
# - after a reboot (into "base", the boot default), both are back with beta's volume intact,
#   and the unchanged image was not loaded again.
{ pkgs, self }:
let
  generated = ./orchestrator/generated;

  imageRoot = pkgs.buildEnv {
    name = "devbox-test-image-root";
    paths = [ pkgs.busybox ];
    pathsToLink = [ "/bin" ];
  };

  # busybox and a PID 1 that exits on SIGTERM, so that a stop does not wait for StopTimeout.
  testImageArguments = {
    name = "devbox-test-image";
    tag = "latest";
    config.Cmd = [
      "/bin/sh"
      "-c"
      "trap 'exit 0' TERM; while :; do sleep 1; done"
    ];
  };
  # The containers see the VM's /nix/store (users.nix nixDaemon, the default): the module keeps
  # the image's root, busybox with it, there (storeContents), and alice loads the image without
  # its store paths (hostStoreImage), as with the devbox image.
  testImage =
    pkgs.dockerTools.buildImage (testImageArguments // { copyToRoot = imageRoot; })
    // {
      storeContents = [ imageRoot ];
      hostStoreImage = pkgs.dockerTools.buildLayeredImage (
        testImageArguments
        // {
          contents = [ imageRoot ];
          includeStorePaths = false;
        }
      );
    };

  # The 1Password CLI is unfree, and runNixOSTest gives the nodes this read-only pkgs, which
  # refuses unfree packages; the test never reaches 1Password anyway (stand-ins/op.sh).
  opStandIn = pkgs.writeShellApplication {
    name = "op";
    runtimeInputs = [ pkgs.coreutils ];
    text = builtins.readFile ./stand-ins/op.sh;
  };
in
pkgs.testers.runNixOSTest {
  name = "devbox-orchestrator";

  nodes.machine =
    { lib, ... }:
    {
      imports = [ self.nixosModules.orchestrator ];

      virtualisation.memorySize = 2048;

      services.devbox = {
        enable = true;
        generatedDir = generated + "/base";
        image = testImage;
        opPackage = opStandIn;
      };

      specialisation = {
        changed.configuration.services.devbox.generatedDir = lib.mkForce (generated + "/changed");
        removed.configuration.services.devbox.generatedDir = lib.mkForce (generated + "/removed");
      };
    };

  # The script is tests/nixos/orchestrator_script.py; it switches to the specialisations of the
  # machine's system.
  testScript =
    { nodes, ... }:
    "TOPLEVEL = ${builtins.toJSON "${nodes.machine.system.build.toplevel}"}\n"
    + builtins.readFile ./orchestrator_script.py;
}
