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

  # busybox and a PID 1 that exits on SIGTERM, so that a stop does not wait for StopTimeout.
  testImage = pkgs.dockerTools.buildImage {
    name = "devbox-test-image";
    tag = "latest";
    copyToRoot = pkgs.buildEnv {
      name = "devbox-test-image-root";
      paths = [ pkgs.busybox ];
      pathsToLink = [ "/bin" ];
    };
    config.Cmd = [
      "/bin/sh"
      "-c"
      "trap 'exit 0' TERM; while :; do sleep 1; done"
    ];
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

  testScript =
    { nodes, ... }:
    let
      toplevel = nodes.machine.system.build.toplevel;
    in
    ''
      import shlex

      CONTAINERS = ["alpha", "beta"]
      MEMORY = {"base": 256 * 1024**2, "changed": 384 * 1024**2}


      def as_alice(command):
          return "su - alice -c " + shlex.quote("XDG_RUNTIME_DIR=/run/user/1001 " + command)


      def unit_property(name, prop):
          return machine.succeed(
              f"systemctl --user -M alice@ show --property={prop} --value container-{name}.service"
          ).strip()


      def podman_inspect(name, template):
          return machine.succeed(
              as_alice(f"podman container inspect --format {shlex.quote(template)} {name}")
          ).strip()


      def start_of(name):
          """What changes exactly when the container is restarted."""
          return (unit_property(name, "InvocationID"), podman_inspect(name, "{{.Id}}"))


      def wait_running(name, timeout=180):
          machine.wait_until_succeeds(
              f"systemctl --user -M alice@ is-active container-{name}.service", timeout=timeout
          )
          machine.wait_until_succeeds(
              as_alice(f"podman container inspect --format '{{{{.State.Running}}}}' {name} | grep -qx true"),
              timeout=timeout,
          )


      def assert_runs_as_alice(name):
          pid = unit_property(name, "MainPID")
          owner = machine.succeed(f"ps -o user= -p {pid}").strip()
          assert owner == "alice", f"container-{name}.service runs as {owner}, not alice"


      def switch_to(specialisation):
          # Restarts devbox-apply-alice when alice's units changed, and waits for it.
          machine.succeed(
              f"${toplevel}/specialisation/{specialisation}/bin/switch-to-configuration test"
          )


      machine.start()
      machine.wait_for_unit("multi-user.target")
      machine.wait_for_unit("user@1001.service")
      machine.wait_for_unit("devbox-image-alice.service")
      machine.succeed(as_alice("podman image exists localhost/devbox/devcontainer:latest"))

      with subtest("both containers run as alice after boot"):
          # devbox-ctl create provisions these after the rebuild; until then the units retry.
          for name in CONTAINERS:
              machine.succeed(
                  as_alice(f"printf test-key | podman secret create devbox-{name}-ts-authkey -")
              )
          for name in CONTAINERS:
              wait_running(name)
              assert_runs_as_alice(name)
          assert int(podman_inspect("alpha", "{{.HostConfig.Memory}}")) == MEMORY["base"]
          machine.wait_for_unit("devbox-apply-alice.service")
          machine.succeed(as_alice("podman exec beta sh -c 'echo kept > /home/dev/marker'"))
          booted = {name: start_of(name) for name in CONTAINERS}

      with subtest("a changed unit restarts exactly its container"):
          switch_to("changed")
          wait_running("alpha")
          assert int(podman_inspect("alpha", "{{.HostConfig.Memory}}")) == MEMORY["changed"]
          changed = {name: start_of(name) for name in CONTAINERS}
          assert changed["alpha"][0] != booted["alpha"][0], "alpha's unit was not restarted"
          assert changed["alpha"][1] != booted["alpha"][1], "alpha's container was not replaced"
          assert changed["beta"] == booted["beta"], "beta was restarted, but its unit did not change"

      with subtest("a removed container is stopped, its volume kept"):
          switch_to("removed")
          machine.fail("systemctl --user -M alice@ is-active container-beta.service")
          running = machine.succeed(as_alice("podman ps --format '{{.Names}}'")).split()
          assert "beta" not in running, f"beta still runs: {running}"
          machine.succeed(as_alice("podman volume exists beta-data"))
          assert start_of("alpha") == changed["alpha"], "alpha was restarted, but its unit did not change"

      with subtest("after a reboot both are back, with their volumes"):
          machine.shutdown()
          machine.start()
          machine.wait_for_unit("user@1001.service")
          for name in CONTAINERS:
              wait_running(name, timeout=120)
              assert_runs_as_alice(name)
          # The boot default is the base configuration: `test` switched without touching it.
          assert int(podman_inspect("alpha", "{{.HostConfig.Memory}}")) == MEMORY["base"]
          assert machine.succeed(as_alice("podman exec beta cat /home/dev/marker")).strip() == "kept"
          machine.wait_for_unit("devbox-image-alice.service")
          machine.succeed("journalctl -b -u devbox-image-alice.service | grep -q 'is already loaded'")
          machine.wait_for_unit("devbox-apply-alice.service")
    '';
}
