"""A fleet's verbs say what happened (simulated fleet of tests/fleet.py: real OpenSSH, podman,
Quadlet, Nix and each host's devbox-ctl; colmena stood in).
"""

from __future__ import annotations

from fleet import Fleet


def test_deploy_says_what_it_will_do_for_a_host_named(fleet_of) -> None:  # type: ignore[no-untyped-def]
    fleet: Fleet = fleet_of(("alpha",))
    fleet.declare([])
    result = fleet.control.cli("deploy", "alpha")
    assert result.code == 0, result.out + result.err
    assert "Will deploy alpha: asked for by name.\n" in result.out
    assert "alpha: named" not in result.out
    assert "Deployed alpha." in result.out


def test_a_status_whose_host_failed_says_so(fleet_of) -> None:  # type: ignore[no-untyped-def]
    """The host's devbox-ctl crashed (exit 1, no status): not 'web is on host alpha.' alone."""
    fleet: Fleet = fleet_of(("alpha",))
    fleet.declare([{"name": "web", "owner": "alice", "host": "alpha"}])
    launcher = fleet.hosts["alpha"].stand_ins.bin / "devbox-ctl"
    launcher.write_text(
        "#!/bin/sh\necho 'Traceback (most recent call last):' >&2\n"
        "echo 'ImportError: cannot import name main' >&2\nexit 1\n"
    )
    result = fleet.control.cli("status", "web")
    assert result.code == 3, result.out + result.err
    assert result.out == ""
    assert result.err.startswith(
        "error: on alpha: the status of web failed: ImportError: cannot import name main\n"
    ), result.err
    assert "hint: web is on host alpha" in result.err
