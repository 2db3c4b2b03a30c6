"""check finds a stale or hand-edited tree; plan reports semantic changes from the models."""

from __future__ import annotations

import json
from pathlib import Path

from devbox.declare import plan as planning
from support import edit_record, run_cli


def test_check_passes_on_a_fresh_tree(config: Path) -> None:
    assert run_cli("generate", cwd=config).code == 0
    result = run_cli("check", cwd=config)
    assert (result.code, result.out) == (0, "generated is up to date.\n")


def test_check_detects_a_hand_edit_with_a_diff(config: Path) -> None:
    run_cli("generate", cwd=config)
    unit = config / "generated/users/1001/devbox-web.container"
    unit.write_text(unit.read_text().replace("--memory=4G", "--memory=64G"))
    result = run_cli("check", cwd=config)
    assert result.code == 1
    assert "-PodmanArgs=--cpus=2 --memory=64G\n+PodmanArgs=--cpus=2 --memory=4G\n" in result.out
    assert "generated/users/1001/devbox-web.container" in result.out
    assert "(1 file differs)" in result.err


def test_check_detects_stale_missing_and_extra_files(config: Path) -> None:
    run_cli("generate", cwd=config)
    (config / "generated/users/1002/devbox-api-data.volume").unlink()
    (config / "generated/users/1002/stray.container").write_text("[Container]\n")
    edit_record(config, "web", cpu=3)
    result = run_cli("check", "--json", cwd=config)
    assert result.code == 1
    assert result.json()["files"] == {
        "manifest.json": "updated",
        "users/1001/devbox-web.container": "updated",
        "users/1002/devbox-api-data.volume": "created",
        "users/1002/stray.container": "removed",
    }


def test_check_without_a_generated_tree_is_drift(config: Path) -> None:
    assert run_cli("check", cwd=config).code == 1


def test_plan_reports_one_memory_change_as_exactly_that(config: Path) -> None:
    run_cli("generate", cwd=config)
    edit_record(config, "api", memory="3G")
    result = run_cli("plan", "--json", cwd=config)
    assert result.code == 1
    plan = result.json()
    assert plan["containers"] == [
        {
            "name": "api",
            "owner": "bob",
            "action": "changed",
            "effect": "restarts",
            "restarts": True,
            "fields": [{"field": "memory", "old": "2G", "new": "3G"}],
        }
    ]
    assert plan["unchanged"] == 1
    assert (plan["users"], plan["settings"], plan["otherFiles"]) == ([], [], [])
    text = run_cli("plan", cwd=config)
    assert text.out == (
        "Plan: 0 to add, 1 to change, 0 to remove, 1 unchanged.\n"
        "~ api (bob): restarts\n"
        '    memory: "2G" → "3G"\n'
    )


def test_plan_is_clean_after_generate(config: Path) -> None:
    run_cli("generate", cwd=config)
    result = run_cli("plan", cwd=config)
    assert (result.code, result.out) == (0, "No changes: 2 containers up to date.\n")


def test_plan_distinguishes_restart_stop_start_and_no_restart(config: Path) -> None:
    run_cli("generate", cwd=config)
    data = json.loads((config / "containers.json").read_text())
    data["containers"] = [
        {"name": "web", "owner": "alice", "state": "stopped", "stoppedAt": "2026-11-26T10:00:00Z"},
        {
            "name": "api",
            "owner": "bob",
            "memory": "2G",
            "pin": {"until": "2026-12-01", "reason": "x"},
        },
        {"name": "new-one", "owner": "alice"},
    ]
    (config / "containers.json").write_text(json.dumps(data))
    plan = run_cli("plan", "--json", cwd=config).json()
    effects = {c["name"]: (c["action"], c["effect"]) for c in plan["containers"]}
    assert effects == {
        "api": ("changed", "no restart"),
        "new-one": ("added", "starts"),
        "web": ("changed", "stops"),
    }
    run_cli("generate", cwd=config)
    data["containers"] = data["containers"][1:]
    (config / "containers.json").write_text(json.dumps(data))
    plan = run_cli("plan", "--json", cwd=config).json()
    assert [(c["name"], c["action"], c["effect"]) for c in plan["containers"]] == [
        ("web", "removed", "stops")
    ]


def test_plan_reports_settings_and_users(config: Path) -> None:
    run_cli("generate", cwd=config)
    users = (config / "users.nix").read_text()
    users = users.replace('opVault = "DevBox";', 'opVault = "DevBox"; defaultMemory = "6G";')
    users = users.replace("bob = { uid = 1002; };", "bob = { uid = 1002; admin = true; };")
    (config / "users.nix").write_text(users)
    result = run_cli("plan", cwd=config)
    assert result.code == 1
    assert "~ web (alice): restarts\n" in result.out
    assert 'memory: "4G" → "6G"' in result.out
    assert "users:\n    bob.admin: false → true\n" in result.out
    assert 'settings:\n    defaultMemory: "4G" → "6G"\n' in result.out


def test_plan_reports_a_hand_edited_unit_as_drift(config: Path) -> None:
    run_cli("generate", cwd=config)
    unit = config / "generated/users/1001/devbox-web.container"
    unit.write_text(unit.read_text().replace("--memory=4G", "--memory=64G"))
    (config / "generated/users/1002/stray.container").write_text("[Container]\n")
    result = run_cli("plan", cwd=config)
    assert result.code == 1
    assert result.out == (
        "No changes: 2 containers up to date.\n"
        "generated has drifted: 2 files differ from what its manifest.json records (edited by "
        "hand?); devbox-ctl check shows the diff, devbox-ctl generate rewrites them:\n"
        "    users/1001/devbox-web.container\n"
        "    users/1002/stray.container\n"
    )
    plan = run_cli("plan", "--json", cwd=config).json()
    assert plan["drifted"] == ["users/1001/devbox-web.container", "users/1002/stray.container"]
    assert plan["changed"] is True
    run_cli("generate", cwd=config)
    assert run_cli("plan", cwd=config).code == 0


def test_plan_reports_a_deleted_unit_beside_a_semantic_change(config: Path) -> None:
    run_cli("generate", cwd=config)
    (config / "generated/users/1002/devbox-api-data.volume").unlink()
    edit_record(config, "web", cpu=3)
    result = run_cli("plan", cwd=config)
    assert result.code == 1
    assert "~ web (alice): restarts\n" in result.out
    assert result.out.endswith(
        "generated has drifted: 1 file differs from what its manifest.json records (edited by "
        "hand?); devbox-ctl check shows the diff, devbox-ctl generate rewrites them:\n"
        "    users/1002/devbox-api-data.volume\n"
    )


def test_field_changes_of_equal_objects_are_none_but_a_changed_type_is_one() -> None:
    users = {f"user{i}": {"uid": 1000 + i, "admin": False, "groups": ["a"]} for i in range(50)}
    assert planning.field_changes(users, json.loads(json.dumps(users))) == []
    assert planning.field_changes({"cpu": 2}, {"cpu": 2.0}) == [planning.FieldChange("cpu", 2, 2.0)]
    assert planning.field_changes({"u": {"admin": True}}, {"u": {"admin": 1}}) == [
        planning.FieldChange("u.admin", True, 1)
    ]
