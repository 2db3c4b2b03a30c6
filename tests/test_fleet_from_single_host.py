"""One host becoming a fleet: plan and generate recognise the running host's units.

The single host's tree (generated/users/…) becomes its slice of the fleet's tree
(generated/hosts/<host>/users/…) when users.nix gains `hosts` with this host among them and
every record gets its `host` (docs/fleet.md). The units are byte for byte the same, so plan
says that host's containers are unchanged and generate reports the files as moved, not as
removed and created. Real Nix reads users.nix, as devbox-ctl does.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from devbox.declare import generated_tree
from support import REPO, run_cli

EXAMPLE = REPO / "examples" / "fleet"
HOSTS = re.compile(r"\n  hosts = \{.*?\n  \};\n", re.DOTALL)


def _records(*, host: str | None) -> dict[str, object]:
    """examples/fleet's containers, all on `host` (None: a single host's, without hosts)."""
    document = json.loads((EXAMPLE / "containers.json").read_text())
    for record in document["containers"]:
        record.pop("labels", None)
        record.pop("host", None)
        if host is not None:
            record["host"] = host
    return document


@pytest.fixture
def single(tmp_path: Path, nix: str) -> Path:  # users.nix is read with Nix
    """A single host's config directory (examples/fleet without hosts), generated."""
    fleet_users = (EXAMPLE / "users.nix").read_text()
    assert HOSTS.search(fleet_users), "examples/fleet/users.nix declares its hosts"
    (tmp_path / "users.nix").write_text(HOSTS.sub("\n", fleet_users, count=1))
    (tmp_path / "containers.json").write_text(json.dumps(_records(host=None), indent=2))
    made = run_cli("generate", cwd=tmp_path)
    assert made.code == 0, made.err
    assert "hosts/" not in made.out
    return tmp_path


def _become_fleet(config: Path, host: str = "alpha") -> None:
    (config / "users.nix").write_text((EXAMPLE / "users.nix").read_text())
    (config / "containers.json").write_text(json.dumps(_records(host=host), indent=2))


def test_plan_compares_the_running_host_with_its_old_tree(single: Path) -> None:
    _become_fleet(single)
    result = run_cli("plan", "--json", cwd=single)
    assert result.code == 1, result.err  # beta and gamma are new
    plan = result.json()
    alpha = plan["hosts"]["alpha"]
    assert alpha["changed"] is False, alpha
    assert (alpha["unchanged"], alpha["containers"], alpha["first"]) == (3, [], False)
    assert (alpha["otherFiles"], alpha["drifted"], alpha["users"]) == ([], [], [])
    assert (plan["first"], plan["fromSingleHost"], plan["formerHost"]) == (False, True, "alpha")
    for new in ("beta", "gamma"):
        assert plan["hosts"][new]["first"] is True
    text = run_cli("plan", cwd=single).out
    assert "No generated tree yet" not in text.split("host beta:")[0]
    assert "becomes host alpha's slice" in text
    assert "host alpha:\n  No changes: 3 containers up to date." in text


def test_generate_reports_the_units_as_moved_not_removed_and_created(single: Path) -> None:
    old = generated_tree.read_tree(single / "generated")
    _become_fleet(single)
    result = run_cli("generate", "--json", cwd=single)
    assert result.code == 0, result.err
    report = result.json()
    moved = {path for path in old if path != "manifest.json"}
    assert report["counts"]["removed"] == 0
    assert report["counts"]["moved"] == len(moved) == 8
    assert report["moves"] == {f"hosts/alpha/{path}": path for path in sorted(moved)}
    # Only the new index, alpha's manifest and the two new hosts' slices are created.
    assert report["counts"]["created"] == 1 + 3 + 3
    new = generated_tree.read_tree(single / "generated")
    assert all(new[f"hosts/alpha/{path}"] == old[path] for path in moved)
    assert not any(path in new for path in moved)
    again = run_cli("plan", cwd=single)
    assert again.code == 0, again.out


def test_moved_units_keep_their_inode(single: Path) -> None:
    unit = single / "generated" / "users" / "1001" / "devbox-web.container"
    before = unit.stat()
    _become_fleet(single)
    assert run_cli("generate", cwd=single).code == 0
    after = (single / "generated" / "hosts" / "alpha" / "users" / "1001" / unit.name).stat()
    assert (after.st_ino, after.st_mtime) == (before.st_ino, before.st_mtime)


def test_containers_declared_elsewhere_are_not_taken_for_this_host(single: Path) -> None:
    # Most containers go to beta: beta is the host this tree becomes; what moved to alpha by
    # the hand edit shows as leaving beta without its data.
    _become_fleet(single, host="beta")
    fleet = json.loads((single / "containers.json").read_text())
    fleet["containers"][0]["host"] = "alpha"
    (single / "containers.json").write_text(json.dumps(fleet))
    plan = run_cli("plan", "--json", cwd=single).json()
    assert plan["formerHost"] == "beta"
    moved = fleet["containers"][0]["name"]
    beta = plan["hosts"]["beta"]
    assert [(c["name"], c["action"]) for c in beta["containers"]] == [(moved, "removed")]
    assert beta["unchanged"] == 2
    assert "devbox-ctl move" in beta["containers"][0]["effect"]


def test_a_tree_no_host_can_claim_is_new_everywhere_and_said_so(single: Path) -> None:
    # Each of the three containers on its own host: no host holds most of them.
    _become_fleet(single)
    fleet = json.loads((single / "containers.json").read_text())
    for record, host in zip(fleet["containers"], ("alpha", "beta", "gamma"), strict=True):
        record["host"] = host
    (single / "containers.json").write_text(json.dumps(fleet))
    result = run_cli("plan", cwd=single)
    assert "no one host is declared to hold most of its containers" in result.out
    plan = run_cli("plan", "--json", cwd=single).json()
    assert (plan["fromSingleHost"], plan["formerHost"]) == (True, None)
    made = run_cli("generate", "--json", cwd=single).json()
    assert made["moves"] == {}
    assert made["counts"]["removed"] == 8
