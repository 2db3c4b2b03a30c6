"""Reading the inputs: Nix's own errors, strict JSON, missing files and tools."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support import USERS_NIX, container, run_cli, write_inputs

RECORDS = {"version": 1, "containers": [container("web")]}


def _generate(case: Path) -> tuple[int, str]:
    result = run_cli("generate", cwd=case)
    assert "Traceback" not in result.err
    assert not (case / "generated").exists(), "a refused input must not write anything"
    return result.code, result.err


def test_a_nix_syntax_error_shows_nix_message_and_position(tmp_path: Path, nix: str) -> None:
    case = write_inputs(tmp_path, "{\n  users = {\n    alice = { uid = 1001 };\n  };\n}\n", RECORDS)
    code, err = _generate(case)
    assert code == 2
    assert err.startswith("error: users.nix: Nix could not evaluate it:\n")
    assert "syntax error" in err
    assert "users.nix:3:" in err  # Nix's own position: file, line, column


def test_an_evaluation_error_shows_nix_message(tmp_path: Path, nix: str) -> None:
    case = write_inputs(tmp_path, '{ users.alice.uid = 1000 + "1"; }\n', RECORDS)
    code, err = _generate(case)
    assert code == 2
    assert "Nix could not evaluate it" in err
    assert "cannot add a string to an integer" in err or "string" in err


def test_a_function_is_not_a_users_file(tmp_path: Path, nix: str) -> None:
    case = write_inputs(tmp_path, "{ pkgs, ... }: { users.alice.uid = 1001; }\n", RECORDS)
    code, err = _generate(case)
    assert code == 2
    assert "users.nix must be a plain attribute set" in err


def test_users_nix_that_is_not_an_attribute_set(tmp_path: Path, nix: str) -> None:
    case = write_inputs(tmp_path, "[ 1 2 ]\n", RECORDS)
    code, err = _generate(case)
    assert (code, err) == (
        2,
        "error: users.nix: is not an attribute set; write { users = { … }; }\n",
    )


def test_missing_nix_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    case = write_inputs(tmp_path, USERS_NIX, RECORDS)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    code, err = _generate(case)
    assert code == 3
    assert err.startswith("error: nix-instantiate not found on PATH\n")
    assert "hint: devbox-ctl reads users.nix with the Nix evaluator; install Nix" in err
    assert "apt-get install nix-bin" in err


def test_missing_files_name_the_fix(tmp_path: Path, nix: str) -> None:
    code, err = _generate(tmp_path)
    assert code == 2
    assert "error: users.nix: not found; create it" in err
    assert 'error: containers.json: not found; create it with {"version": 1' in err


def test_duplicate_keys_are_refused(tmp_path: Path, nix: str) -> None:
    text = '{"version": 1, "containers": [{"name": "web", "owner": "alice", "owner": "bob"}]}'
    code, err = _generate(write_inputs(tmp_path, USERS_NIX, text))
    assert (code, err) == (
        2,
        'error: containers.json: the key "owner" appears twice in one object; fix the JSON\n',
    )


def test_nan_is_refused(tmp_path: Path, nix: str) -> None:
    text = '{"version": 1, "containers": [{"name": "web", "owner": "alice", "cpu": NaN}]}'
    code, err = _generate(write_inputs(tmp_path, USERS_NIX, text))
    assert (code, err) == (2, "error: containers.json: NaN is not a JSON number; fix the JSON\n")


def test_non_utf8_is_refused(tmp_path: Path, nix: str) -> None:
    case = write_inputs(tmp_path, USERS_NIX, RECORDS)
    (case / "containers.json").write_bytes(b'{"version": 1, "containers": [\xff]}')
    code, err = _generate(case)
    assert (code, err) == (2, "error: containers.json: is not UTF-8 text; save it as UTF-8\n")


def test_problems_in_both_files_are_reported_together(tmp_path: Path, nix: str) -> None:
    users = "{ users.alice = { uid = 1001; admn = true; }; containers.maxGlobal = 0; }\n"
    records = {"version": 1, "containers": [container("X"), container("web", cpu="2")]}
    code, err = _generate(write_inputs(tmp_path, users, records))
    assert code == 2
    assert err.splitlines() == [
        'error: containers.json: containers[0].name: "X" is not a valid name; use 3–63 lowercase '
        "letters, digits and hyphens, starting with a letter and ending with a letter or digit",
        'error: containers.json: containers[1].cpu: "2" is not a number; write a number without '
        "quotes, e.g. 2 or 0.5",
        "error: users.nix: containers.maxGlobal: 0 is not positive; use 1 or more",
        "error: users.nix: users.alice.admn: is not a known field; did you mean admin?",
    ]


def test_paths_in_messages_are_the_ones_given(tmp_path: Path, nix: str) -> None:
    case = write_inputs(tmp_path / "cfg", USERS_NIX, {"version": 1, "containers": [container("X")]})
    result = run_cli(
        "generate", "--users", "cfg/users.nix", "--containers", "cfg/containers.json", cwd=tmp_path
    )
    assert result.code == 2
    assert result.err.startswith("error: cfg/containers.json: containers[0].name:")
    assert not (case / "generated").exists()


def test_defaults_fill_absent_fields(tmp_path: Path, nix: str) -> None:
    users = '{ users.alice.uid = 1001; containers = { defaultCpu = 3; defaultMemory = "5g"; }; }'
    case = write_inputs(tmp_path, users, RECORDS)
    assert run_cli("generate", cwd=case).code == 0
    manifest = json.loads((case / "generated/manifest.json").read_text())
    web = manifest["containers"]["web"]
    assert (web["cpu"], web["memory"], web["syncthing"], web["state"]) == (
        3,
        "5G",
        False,
        "running",
    )
    assert manifest["settings"]["idleStopDays"] == 7
    assert manifest["settings"]["stoppedDestroyDays"] == 14
    assert manifest["settings"]["maxPerUser"] == 5
    assert manifest["settings"]["maxGlobal"] == 7
