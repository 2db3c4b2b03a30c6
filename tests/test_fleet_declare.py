"""A fleet's declaration: users.nix `hosts`, a host per record, one slice per host.

The generator is run as devbox-ctl runs it (real Nix for users.nix). The refusals are golden
cases (tests/golden/bad-fleet, host-without-fleet); examples/fleet is the golden fleet tree.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from devbox.declare import edit, generated_tree
from support import REPO, edit_record, run_cli, writable_copy

EXAMPLE = REPO / "examples" / "fleet"


@pytest.fixture
def fleet(tmp_path: Path, nix: str) -> Path:  # users.nix is read with Nix
    config = tmp_path / "config"
    writable_copy(EXAMPLE, config, "generated")
    assert run_cli("generate", cwd=config).code == 0
    return config


def test_each_host_gets_a_slice_with_only_its_containers(fleet: Path) -> None:
    tree = generated_tree.read_tree(fleet / "generated")
    index = json.loads(tree["manifest.json"])
    assert sorted(index["fleet"]["hosts"]) == ["alpha", "beta", "gamma"]
    for host, entry in index["fleet"]["hosts"].items():
        assert entry["slice"] == f"hosts/{host}"
        data = tree[f"hosts/{host}/manifest.json"]
        assert entry["manifestSha256"] == hashlib.sha256(data).hexdigest()
        slice_manifest = json.loads(data)
        assert slice_manifest["host"] == host
        # Every user everywhere (they may use devbox-ctl on any host); only this host's units.
        assert sorted(slice_manifest["users"]) == ["alice", "bob"]
        for name, container in slice_manifest["containers"].items():
            assert container["host"] == host, name
            for unit in container["units"]:
                assert f"hosts/{host}/{unit}" in tree
        assert f"hosts/{host}/system/devbox-cleanup.timer" in tree
    on = {
        host: sorted(json.loads(tree[f"hosts/{host}/manifest.json"])["containers"])
        for host in ("alpha", "beta", "gamma")
    }
    assert on == {"alpha": ["web"], "beta": ["ml-train"], "gamma": ["api"]}
    units = [p for p in tree if p.endswith((".container", ".volume"))]
    assert all(p.startswith("hosts/") for p in units), "no unit outside a slice"


def test_the_example_fleet_is_what_the_generator_writes(fleet: Path) -> None:
    assert generated_tree.read_tree(fleet / "generated") == generated_tree.read_tree(
        EXAMPLE / "generated"
    )


def test_plan_is_per_host_and_names_only_the_changed_host(fleet: Path) -> None:
    edit_record(fleet, "web", memory="8G")
    result = run_cli("plan", "--json", cwd=fleet)
    assert result.code == 1
    plan = json.loads(result.out)
    assert sorted(plan["hosts"]) == ["alpha", "beta", "gamma"]
    assert [c["name"] for c in plan["hosts"]["alpha"]["containers"]] == ["web"]
    assert plan["hosts"]["alpha"]["containers"][0]["effect"] == "restarts"
    assert not plan["hosts"]["beta"]["changed"]
    assert not plan["hosts"]["gamma"]["changed"]
    text = run_cli("plan", cwd=fleet).out
    assert "host alpha:\n  Plan: 0 to add, 1 to change" in text
    assert "host beta:\n  No changes: 1 container up to date." in text


def test_a_hand_edited_host_is_shown_as_a_move_without_data(fleet: Path) -> None:
    """A plan over a placement change moves nothing by itself, and says the data stays."""
    edit_record(fleet, "web", host="gamma")
    text = run_cli("plan", cwd=fleet).out
    assert "- web (alice): stops; now declared on gamma: its volume stays here" in text
    assert "devbox-ctl move web --to gamma moves the data" in text
    assert "+ web (alice): starts, without its data (that stays on alpha)" in text


def test_check_covers_every_slice(fleet: Path) -> None:
    unit = fleet / "generated/hosts/gamma/users/1002/devbox-api.container"
    unit.write_text(unit.read_text() + "# edited\n")
    result = run_cli("check", cwd=fleet)
    assert result.code == 1
    assert "generated/hosts/gamma/users/1002/devbox-api.container" in result.out
    plan = json.loads(run_cli("plan", "--json", cwd=fleet).out)
    assert plan["hosts"]["gamma"]["drifted"] == ["users/1002/devbox-api.container"]
    assert plan["hosts"]["alpha"]["drifted"] == []


def test_a_host_without_containers_still_gets_its_slice(fleet: Path) -> None:
    data = json.loads((fleet / "containers.json").read_text())
    data["containers"] = [r for r in data["containers"] if r["host"] != "gamma"]
    (fleet / "containers.json").write_text(json.dumps(data))
    assert run_cli("generate", cwd=fleet).code == 0
    tree = generated_tree.read_tree(fleet / "generated")
    assert json.loads(tree["hosts/gamma/manifest.json"])["containers"] == {}
    assert "hosts/gamma/system/devbox-cleanup.service" in tree
    assert not any(p.startswith("hosts/gamma/users/") for p in tree)


def test_a_new_record_carries_its_host_and_labels_in_the_written_order() -> None:
    from datetime import UTC, datetime

    record = edit.new_record(
        "box",
        "alice",
        state="running",
        created=datetime(2026, 11, 28, tzinfo=UTC),
        host="beta",
        labels=("gpu",),
        memory="8G",
    )
    written = json.loads(edit.dump({"containers": [record]}))["containers"][0]
    assert list(written) == ["name", "owner", "host", "labels", "memory", "state", "created"]
    assert written["host"] == "beta"
    assert written["labels"] == ["gpu"]


def test_the_limits_count_across_the_fleet(fleet: Path) -> None:
    users = (fleet / "users.nix").read_text().replace("maxGlobal = 12;", "maxGlobal = 2;")
    (fleet / "users.nix").write_text(
        users.replace("admin = true;", "admin = true; maxContainers = 1;")
    )
    result = run_cli("generate", cwd=fleet)
    assert result.code == 2
    assert "3 containers are declared, more than maxGlobal (2)" in result.err
    assert "alice would own more than their limit of 1 container" in result.err
