"""users.nix evaluated once per content and Nix: the cache in root's state directory.

The real nix-instantiate evaluates; a logging wrapper in front of it on PATH counts the runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import pytest

from devbox.tools import nix as nixtool

USERS = "{ users = { alice = { uid = 1001; admin = true; }; }; }\n"


@pytest.fixture
def runs(tmp_path: Path, nix: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A nix-instantiate first on PATH that logs each run and then runs the real one."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "runs.log"
    wrapper = bin_dir / "nix-instantiate"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {nix} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return log


def count(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def users_file(tmp_path: Path, text: str = USERS) -> Path:
    path = tmp_path / "repo" / "users.nix"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def test_an_unchanged_file_is_evaluated_once(tmp_path: Path, runs: Path) -> None:
    path, cache = users_file(tmp_path), tmp_path / "state" / "cache" / "users-nix.json"
    first = nixtool.eval_file_json(path, cache)
    evaluated = count(runs)
    assert evaluated == 2  # the value, and the check that it depends on the file alone
    assert nixtool.eval_file_json(path, cache) == first
    assert count(runs) == evaluated
    assert cache.stat().st_mode & 0o777 == 0o600
    # A change of content is a new key: evaluated again, and its value is the new one.
    path.write_text(USERS.replace("1001", "1005"))
    assert nixtool.eval_file_json(path, cache)["users"]["alice"]["uid"] == 1005
    assert count(runs) > evaluated


def test_without_a_cache_file_every_read_evaluates(tmp_path: Path, runs: Path) -> None:
    path = users_file(tmp_path)
    nixtool.eval_file_json(path)
    nixtool.eval_file_json(path)
    assert count(runs) == 2


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("{ users = import ./team.nix; }\n", "imports a file"),
        (
            '{ users = { a = { uid = 1001; note = builtins.readFile "/etc/hostname"; }; }; }\n',
            "reads one",
        ),
        ("{ users = {}; at = builtins.currentTime; }\n", "reads the clock"),
        ('{ users = {}; home = builtins.getEnv "HOME"; }\n', "reads the environment"),
        ("{ users = {}; p = <nixpkgs>; }\n", "uses the search path"),
    ],
)
def test_a_file_that_depends_on_more_is_evaluated_each_time(
    tmp_path: Path, runs: Path, text: str, why: str
) -> None:
    path, cache = users_file(tmp_path, text), tmp_path / "cache.json"
    (path.parent / "team.nix").write_text("{ alice = { uid = 1001; }; }\n")
    # <nixpkgs> may not exist here: what matters is that nothing is kept.
    with contextlib.suppress(nixtool.NixEvalError):
        nixtool.eval_file_json(path, cache)
    assert not cache.exists(), why
    if "team.nix" in text:
        # The imported file's change is seen at once.
        (path.parent / "team.nix").write_text("{ alice = { uid = 1009; }; }\n")
        assert nixtool.eval_file_json(path, cache)["users"]["alice"]["uid"] == 1009


def _kept(tmp_path: Path, runs: Path) -> tuple[Path, Path, int]:
    path, cache = users_file(tmp_path), tmp_path / "cache.json"
    nixtool.eval_file_json(path, cache)
    return path, cache, count(runs)


def test_a_cache_that_cannot_be_trusted_is_never_used(tmp_path: Path, runs: Path) -> None:
    path, cache, before = _kept(tmp_path, runs)
    document = json.loads(cache.read_text())
    forged = dict(document, value={"users": {"mallory": {"uid": 1001, "admin": True}}})
    cases = {
        "partial": cache.read_text()[:40],
        "another devbox": json.dumps(dict(forged, key=dict(document["key"], devbox="/other"))),
        "another Nix": json.dumps(dict(forged, key=dict(document["key"], nix=["/x", 1, 2, 3]))),
        "no value": json.dumps({"key": document["key"]}),
    }
    for label, text in cases.items():
        cache.write_text(text)
        assert nixtool.eval_file_json(path, cache) == {
            "users": {"alice": {"uid": 1001, "admin": True}}
        }, label
    # Writable by others: not root's alone.
    cache.write_text(json.dumps(forged))
    cache.chmod(0o666)
    assert "alice" in nixtool.eval_file_json(path, cache)["users"]
    # A link to a file elsewhere is not followed.
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps(forged))
    cache.unlink()
    cache.symlink_to(elsewhere)
    assert "alice" in nixtool.eval_file_json(path, cache)["users"]
    assert count(runs) > before


def test_a_new_nix_is_a_new_key(tmp_path: Path, runs: Path, nix: str) -> None:
    path, cache, before = _kept(tmp_path, runs)
    other = tmp_path / "bin2"
    other.mkdir()
    shutil.copy(tmp_path / "bin" / "nix-instantiate", other / "nix-instantiate")
    os.environ["PATH"] = f"{other}:{os.environ['PATH']}"
    nixtool.eval_file_json(path, cache)
    assert count(runs) > before
