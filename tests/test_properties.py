"""Property tests: for any containers.json and users.nix, exit 2 with a message or valid units.

Inputs mix well-formed values with hostile ones (line breaks, `%h`, `$HOME`, quotes, spaces,
unicode, `../`, very long strings, wrong types). Whatever comes in, devbox-ctl either refuses
it (exit 2, `error:` lines, nothing written) or writes units that the real Quadlet accepts;
never a traceback.
"""

from __future__ import annotations

import json
import math
import shutil
import string
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from support import quadlet_dryrun, run_cli

HOSTILE = st.sampled_from(
    [
        "web\n[Service]\nExecStart=/bin/sh",
        "%h",
        "100%",
        "$HOME",
        '"quoted"',
        "with space",
        "../../etc/passwd",
        "ünïcödé",
        "x" * 300,
        "",
        "tab\there",
        "back\\slash",
        "semi;colon",
        "${builtins.currentTime}",
    ]
)
TEXT = st.one_of(HOSTILE, st.text(max_size=80))


def mostly(valid: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Valid values 19 times in 20, so that both outcomes are exercised often."""
    # A middle value triggers the other branch: hypothesis favours the ends of a range.
    return st.integers(0, 19).flatmap(lambda n: other if n == 7 else valid)


NAME = mostly(st.from_regex(r"[a-z][a-z0-9-]{1,20}[a-z0-9]", fullmatch=True), TEXT)
USER_NAME = st.one_of(
    st.sampled_from(["alice", "bob", "carol-2"]),
    st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True),
    TEXT,
)
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**12),
    st.floats(),
    TEXT,
    st.lists(st.integers(), max_size=3),
)
CPU = mostly(
    st.one_of(st.integers(1, 16), st.decimals("0.1", 8, places=2).map(float)),
    st.one_of(st.integers(-2, 64), st.floats(allow_nan=True, allow_infinity=True), JUNK),
)
MEMORY = mostly(
    st.from_regex(r"[1-9][0-9]{2,3}[mM]|[1-9][gG]", fullmatch=True),
    st.one_of(st.from_regex(r"[1-9][0-9]{0,5}[bkmgtBKMGT]?", fullmatch=True), JUNK),
)
TIME = mostly(
    st.sampled_from(["2026-11-26T09:30:00Z", "2026-11-26T09:30:00+02:00"]),
    st.one_of(st.just("2026-11-26"), JUNK),
)


REASON = st.text(string.ascii_letters + " %$\\\"'", min_size=1, max_size=30).filter(str.strip)


@st.composite
def records(draw: st.DrawFn, owners: list[str]) -> dict[str, Any]:
    record: dict[str, Any] = {
        "name": draw(NAME),
        "owner": draw(mostly(st.sampled_from(owners), USER_NAME)),
    }
    optional = {
        "cpu": CPU,
        "memory": MEMORY,
        "syncthing": mostly(st.booleans(), JUNK),
        "state": mostly(st.sampled_from(["running", "stopped"]), JUNK),
        "created": TIME,
        "stoppedAt": TIME,
        "pin": mostly(
            st.fixed_dictionaries({"until": st.just("2026-12-24"), "reason": mostly(REASON, TEXT)}),
            JUNK,
        ),
        "extra": JUNK,
    }
    for key, strategy in optional.items():
        if draw(st.integers(0, 19)) in ({7} if key == "extra" else set(range(10))):
            record[key] = draw(strategy)
    return record


def containers_file(owners: list[str]) -> st.SearchStrategy[Any]:
    document = st.fixed_dictionaries(
        {"version": mostly(st.just(1), JUNK), "containers": st.lists(records(owners), max_size=6)}
    )
    return mostly(document, JUNK)


def to_nix(value: Any) -> str:
    """A Python value written as Nix, with every string escaped as Nix requires."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"({value})"
    if isinstance(value, float):
        return f"({value:.4f})"
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
        escaped = escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
        return f'"{escaped}"'
    if isinstance(value, list):
        return "[ " + " ".join(to_nix(v) for v in value) + " ]"
    return "{ " + " ".join(f"{to_nix(str(k))} = {to_nix(v)};" for k, v in value.items()) + " }"


NIX_TEXT = st.text(
    alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]), max_size=60
)
NIX_JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 10**9), st.floats(-1e6, 1e6), HOSTILE, NIX_TEXT
)
POLICY = {
    "opVault": mostly(st.just("DevBox"), NIX_JUNK),
    "maxPerUser": mostly(st.integers(3, 10), NIX_JUNK),
    "maxGlobal": mostly(st.integers(10, 20), NIX_JUNK),
    "defaultCpu": mostly(st.sampled_from([1, 2, 0.5]), NIX_JUNK),
    "defaultMemory": mostly(st.sampled_from(["4G", "512M", "1g"]), NIX_JUNK),
    "idleStopDays": mostly(st.integers(1, 7), NIX_JUNK),
    "stoppedDestroyDays": mostly(st.integers(7, 30), NIX_JUNK),
    "image": mostly(st.just("localhost/devbox/devcontainer:latest"), NIX_JUNK),
    "cleanupSchedule": mostly(st.sampled_from(["daily", "*-*-* 04:00:00", "weekly"]), NIX_JUNK),
    "cleanupRandomizedDelay": mostly(st.sampled_from(["1h", "30min", "0"]), NIX_JUNK),
    "stopWarningHours": mostly(st.lists(st.integers(1, 100), max_size=3), NIX_JUNK),
    "webhookUrl": mostly(st.just("https://ntfy.example/t"), NIX_JUNK),
    "typo": NIX_JUNK,
}


@st.composite
def users_file(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(
        st.lists(
            mostly(st.sampled_from(["alice", "bob", "carol-2"]), NIX_TEXT), max_size=4, unique=True
        )
    )
    users = {}
    for uid, name in enumerate(names, start=1001):
        user: dict[str, Any] = {
            "uid": draw(mostly(st.just(uid), st.one_of(st.integers(999, 1010), NIX_JUNK)))
        }
        if draw(st.booleans()):
            user["admin"] = draw(mostly(st.booleans(), NIX_JUNK))
        if draw(st.booleans()):
            user["maxContainers"] = draw(mostly(st.integers(2, 5), NIX_JUNK))
        users[name] = user
    policy = {
        key: draw(strategy)
        for key, strategy in POLICY.items()
        if draw(st.integers(0, 9)) < (1 if key == "typo" else 3)
    }
    return {"users": users, "containers": policy}


def assert_refused_or_valid(case: Path, quadlet: str, result: Any) -> None:
    assert "Traceback" not in result.err, result.err
    assert result.code in (0, 2), (result.code, result.err)
    event(f"exit {result.code}")
    generated = case / "generated"
    if result.code == 2:
        assert result.err.startswith("error: ")
        assert not generated.exists(), "refused input must write nothing"
        return
    for uid_dir in sorted((generated / "users").glob("*")):
        quadlet_dryrun(quadlet, uid_dir)
    for unit in generated.rglob("*"):
        if unit.is_file():
            text = unit.read_text()
            assert all(ch.isprintable() or ch == "\n" for ch in text), unit


FIXED_USERS = "{ users = { alice = { uid = 1001; }; bob = { uid = 1002; admin = true; }; }; containers.maxGlobal = 20; containers.maxPerUser = 10; }\n"


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(document=containers_file(["alice", "bob"]))
def test_any_containers_json(document: Any, tmp_path_factory: Any, quadlet: str, nix: str) -> None:
    case = tmp_path_factory.mktemp("case")
    (case / "users.nix").write_text(FIXED_USERS)
    (case / "containers.json").write_text(json.dumps(document, ensure_ascii=False))
    assert_refused_or_valid(case, quadlet, run_cli("generate", cwd=case))
    shutil.rmtree(case)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(users=users_file(), data=st.data())
def test_any_users_nix(
    users: dict[str, Any], data: st.DataObject, tmp_path_factory: Any, quadlet: str, nix: str
) -> None:
    owners = list(users["users"]) or ["alice"]
    document = data.draw(
        st.fixed_dictionaries(
            {"version": st.just(1), "containers": st.lists(records(owners), max_size=4)}
        )
    )
    case = tmp_path_factory.mktemp("case")
    (case / "users.nix").write_text(to_nix(users) + "\n")
    (case / "containers.json").write_text(json.dumps(document, ensure_ascii=False))
    assert_refused_or_valid(case, quadlet, run_cli("generate", cwd=case))
    shutil.rmtree(case)


def test_to_nix_round_trips_through_nix(tmp_path: Path, nix: str) -> None:
    """The property tests' Nix writer is exact: hostile strings come back unchanged."""
    import subprocess

    value = {
        "s": ['a"b', "c\\d", "${x}", "l\nm", "tab\t", "%h $HOME", "ünï"],
        "n": [-1, 2.5, None, True],
    }
    path = tmp_path / "v.nix"
    path.write_text(to_nix(value))
    out = subprocess.run(
        [nix, "--eval", "--strict", "--json", str(path)], capture_output=True, text=True, check=True
    )
    back = json.loads(out.stdout)
    assert back["s"] == value["s"]
    assert back["n"][0] == -1
    assert math.isclose(back["n"][1], 2.5)
    assert back["n"][2:] == [None, True]


def test_valid_names_are_exactly_dns_labels() -> None:
    from devbox import rules

    for name in ["abc", "a-1", "a" * 63, "x9z"]:
        assert rules.container_name(name) is None
    for name in ["ab", "a" * 64, "-ab", "ab-", "Abc", "a_b", "a.b", "1ab", "a b", "ab\n"]:
        assert rules.container_name(name) is not None
    assert set(string.ascii_lowercase + string.digits + "-") >= set("abc-123")
