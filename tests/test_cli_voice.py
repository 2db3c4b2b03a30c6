"""One voice: every error devbox-ctl prints is `error: …` and `hint: …`, usage errors too; help
and completion say whole what they know. These need no host (tests/runtime/test_voice.py does).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devbox.container import activity, monitor
from devbox.errors import InputError
from devbox.host import hostconfig
from host import run_privileged
from support import REPO, console_script, run_cli

# click's own format, which no error of devbox-ctl's may take.
CLICK_WORDS = ("Usage:", "Error:", "Try '")


def _devbox_voice(err: str) -> list[str]:
    """The lines of an error, each checked to be devbox's `error: …` or `hint: …`."""
    lines = err.splitlines()
    assert lines, "nothing was said"
    assert all(line.startswith(("error: ", "hint: ")) for line in lines), err
    assert not any(word in err for word in CLICK_WORDS), err
    return lines


def test_a_mistyped_verb_is_an_error_with_the_near_misses() -> None:
    result = run_cli("stauts", "web")
    assert result.code == 2
    assert _devbox_voice(result.err) == [
        "error: devbox-ctl: no command is named 'stauts'",
        "hint: did you mean status or start?",
    ]


def test_a_verb_nothing_is_near_points_to_the_list() -> None:
    result = run_cli("xyzzy")
    assert result.code == 2
    assert _devbox_voice(result.err)[-1] == "hint: devbox-ctl --help lists the commands"


def test_a_mistyped_option_is_an_error_with_the_near_misses() -> None:
    result = run_cli("generate", "--user", "x")
    assert result.code == 2
    lines = _devbox_voice(result.err)
    assert lines[0] == "error: devbox-ctl generate: no such option --user"
    assert lines[1].startswith("hint: did you mean --users")


def test_a_value_an_option_does_not_take_names_the_option(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 0)  # root parses it (a user hands it to sudo)
    result = run_cli("create", "web", "--cpu", "lots")
    assert result.code == 2
    assert _devbox_voice(result.err) == [
        "error: devbox-ctl create --cpu: 'lots' is not a valid float",
        "hint: devbox-ctl create --help shows what it takes",
    ]


def test_a_missing_argument_is_said_the_same_way(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """As root, who reads no config before the verb runs (a user's call goes through sudo
    with the host's config first, which the flake's check in Nix's sandbox has not)."""
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setenv("DEVBOX_CONFIG", str(tmp_path / "absent.json"))
    result = run_cli("status")
    assert result.code == 2
    assert _devbox_voice(result.err)[0] == "error: devbox-ctl status: missing argument 'NAME'"


def test_completion_for_a_shell_it_has_no_script_for() -> None:
    result = run_cli("completion", "tcsh")
    assert result.code == 2
    assert _devbox_voice(result.err)[0] == (
        "error: devbox-ctl completion SHELL: 'tcsh' is not one of 'bash', 'zsh', 'fish'"
    )


def test_a_pin_until_a_day_that_is_not_one_is_refused_first(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Before the host's config is even read (there is none here)."""
    monkeypatch.setattr("os.geteuid", lambda: 0)
    monkeypatch.setenv("DEVBOX_CONFIG", str(tmp_path / "absent.json"))
    result = run_cli("pin", "web", "--until", "yesterday", "--reason", "demo")
    assert result.code == 2
    assert _devbox_voice(result.err) == [
        "error: --until: 'yesterday' is not a day",
        "hint: write the pin's last day like 2026-12-24",
    ]


def test_the_help_shows_each_verbs_description_whole() -> None:
    result = run_cli("--help")
    assert result.code == 0
    text = " ".join(result.out.split())
    for whole in (
        "check Exit 1 with a diff when the generated tree is stale or was edited by hand.",
        "destroy Destroy NAME: stop it, remove its declaration, key, volume and Tailscale device.",
        "drain Move every container off HOST, each to the host with most room (admins).",
    ):
        assert whole in text
    assert "..." not in result.out.split("Commands:")[1]
    assert "fleet-host" not in result.out


def test_a_missing_sudo_is_a_missing_program_not_a_bug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A user's runtime verb goes to sudo; without sudo on PATH that is exit 3, said why."""
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "version": 1,
                "configRepo": str(tmp_path / "repo"),
                "privilegedCommand": "/run/current-system/sw/bin/devbox-privileged",
            }
        )
    )
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("DEVBOX_CONFIG", str(config))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr("os.geteuid", lambda: 1001)
    result = run_cli("list")
    assert result.code == 3, result.err
    lines = _devbox_voice(result.err)
    assert lines[0].startswith("error: a program devbox needs is missing: sudo"), lines
    assert "internal error" not in result.err
    assert "bug" not in result.err


def test_devbox_privileged_names_no_variable_it_ignores(tmp_path: Path) -> None:
    """devbox-privileged reads only /etc/devbox/config.json: DEVBOX_CONFIG is no way out."""
    missing = tmp_path / "config.json"
    result = run_privileged(("list",), 1001, missing, tmp_path)
    assert result.code == 2
    assert result.err.startswith(f"error: {missing}: not found; enable services.devbox")
    assert "DEVBOX_CONFIG" not in result.err
    # The user's own devbox-ctl may be pointed elsewhere, and says so.
    with pytest.raises(InputError, match="DEVBOX_CONFIG"):
        hostconfig.load(missing)


def test_keepalive_outside_a_container_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No host would read a lease from a home without the monitor's record: nothing written."""
    monkeypatch.setenv("HOME", str(tmp_path))
    for args in (("--for", "1h"), ("--", "true"), ("--list",)):
        result = run_cli("keepalive", *args)
        assert result.code == 2, (args, result.out, result.err)
        assert _devbox_voice(result.err)[0].startswith(
            "error: keepalive runs inside a devbox container"
        )
        assert result.out == ""
    assert list(tmp_path.iterdir()) == []


def test_keepalive_for_no_time_at_all_says_it_must_be_positive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monitor.Monitor(tmp_path, "web", interval=60).tick()
    result = run_cli("keepalive", "--for", "0m")
    assert result.code == 2
    assert _devbox_voice(result.err)[0] == (
        "error: --for: '0m' is no time at all: a duration must be positive"
    )
    assert not (tmp_path / activity.LEASES).exists()


# Completion: what a Tab offers after a verb, by the console script, as the shell asks it.


def _complete(words: str, config: Path, cword: int = 2) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [console_script()],
        env={
            **os.environ,
            "DEVBOX_CONFIG": str(config),
            "_DEVBOX_CTL_COMPLETE": "bash_complete",
            "COMP_WORDS": words,
            "COMP_CWORD": str(cword),
        },
        capture_output=True,
        text=True,
        check=False,
    )


def _offered(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return [line.split(",", 1)[1] for line in result.stdout.splitlines() if line]


def _config(tmp_path: Path, example: str) -> Path:
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "version": 1,
                "configRepo": str(REPO / "examples"),
                "generatedDir": f"{example}/generated",
            }
        )
    )
    return config


def test_completion_offers_the_declared_containers(tmp_path: Path) -> None:
    config = _config(tmp_path, "basic")
    assert os.geteuid() == 0 or pytest.skip("root sees every container")
    assert _offered(_complete("devbox-ctl status ", config)) == ["api", "ml-train", "web"]
    assert _offered(_complete("devbox-ctl stop w", config)) == ["web"]
    assert _offered(_complete("devbox-ctl events --container m", config, 3)) == ["ml-train"]


def test_completion_offers_a_user_only_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from devbox.cli import names  # new with the completion of names

    monkeypatch.setenv("DEVBOX_CONFIG", str(_config(tmp_path, "basic")))
    monkeypatch.setattr("os.getuid", lambda: 1002)  # bob
    assert [item.value for item in names.containers(None, None, "")] == ["api"]  # type: ignore[arg-type]
    monkeypatch.setattr("os.getuid", lambda: 1001)  # alice, an admin
    assert [item.value for item in names.containers(None, None, "")] == [  # type: ignore[arg-type]
        "api",
        "ml-train",
        "web",
    ]
    monkeypatch.setattr("os.getuid", lambda: 4242)  # in no users.nix
    assert names.containers(None, None, "") == []  # type: ignore[arg-type]


def test_completion_offers_a_fleets_hosts_and_its_containers(tmp_path: Path) -> None:
    config = _config(tmp_path, "fleet")
    hosts = sorted(
        json.loads((REPO / "examples/fleet/generated/manifest.json").read_text())["fleet"]["hosts"]
    )
    assert hosts
    assert _offered(_complete("devbox-ctl drain ", config)) == hosts
    assert _offered(_complete("devbox-ctl move web --to ", config, 4)) == hosts
    assert _offered(_complete("devbox-ctl deploy ", config)) == hosts
    # Containers are offered as the caller may see them: all of them to root only (the
    # builder of the flake's check in Nix's sandbox is no user of the example).
    if os.geteuid() == 0:
        assert "web" in _offered(_complete("devbox-ctl status ", config))


def test_completion_of_what_cannot_be_read_offers_nothing_and_never_fails(
    tmp_path: Path,
) -> None:
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "repo.json").write_text(json.dumps({"configRepo": str(tmp_path / "none")}))
    for config in ("absent.json", "broken.json", "list.json", "repo.json"):
        for words in ("devbox-ctl status ", "devbox-ctl drain "):
            assert _offered(_complete(words, tmp_path / config)) == [], (config, words)


def test_completion_reads_the_config_hostconfig_locates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """names.py does not import hostconfig (pydantic, at every Tab): the two must agree."""
    from devbox.cli import names  # new with the completion of names

    monkeypatch.delenv("DEVBOX_CONFIG", raising=False)
    assert names.config_file() == hostconfig.locate(privileged=False)
    monkeypatch.setenv("DEVBOX_CONFIG", str(tmp_path / "c.json"))
    assert names.config_file() == hostconfig.locate(privileged=False)


def test_a_users_verb_is_handed_to_sudo_without_loading_the_validators(tmp_path: Path) -> None:
    """The caller's side reads config.json as JSON only (root checks the file itself): the
    host test's `--timings` showed pydantic and the declaration's modules taking seconds there."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"version": 1, "privilegedCommand": "/run/x/devbox-privileged"}))
    script = (
        "import os, sys\n"
        "os.geteuid = lambda: 1001\n"
        "def execvp(file, argv):\n"
        "    print(repr(argv)); print('pydantic' in sys.modules); sys.exit(0)\n"
        "os.execvp = execvp\n"
        "from devbox.cli import main\n"
        "main(['stop', 'web'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "DEVBOX_CONFIG": str(config)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    argv, pydantic = result.stdout.splitlines()
    assert argv == repr(["sudo", "-n", "--", "/run/x/devbox-privileged", "stop", "web"])
    assert pydantic == "False"


def test_a_config_without_a_privileged_command_is_refused_before_sudo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({"version": 1, "configRepo": str(tmp_path), "rebuildCommand": ["true"]})
    )
    monkeypatch.setenv("DEVBOX_CONFIG", str(config))
    monkeypatch.setattr("os.geteuid", lambda: 1001)
    result = run_cli("stop", "web")
    assert result.code == 4, result.err
    assert "no privileged command is configured" in result.err
