"""The test script of the NixOS VM test tests/nixos/orchestrator.nix (see its comment).

The NixOS test driver runs it with its own globals (`machine`, `subtest`); orchestrator.nix
puts the line `TOPLEVEL = "<the machine's system>"` before it.
"""

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
        as_alice(
            f"podman container inspect --format '{{{{.State.Running}}}}' {name} | grep -qx true"
        ),
        timeout=timeout,
    )


def assert_runs_as_alice(name):
    pid = unit_property(name, "MainPID")
    owner = machine.succeed(f"ps -o user= -p {pid}").strip()
    assert owner == "alice", f"container-{name}.service runs as {owner}, not alice"


def switch_to(specialisation):
    # Restarts devbox-apply-alice when alice's units changed, and waits for it.
    machine.succeed(f"{TOPLEVEL}/specialisation/{specialisation}/bin/switch-to-configuration test")


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
