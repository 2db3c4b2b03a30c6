"""The command line as users meet it: help, exit codes, errors without tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devbox.declare import pipeline
from support import REPO, console_script, run_cli, writable_copy


def test_help_lists_the_commands() -> None:
    result = run_cli("--help")
    assert result.code == 0
    for command in ("generate", "check", "plan", "completion"):
        assert f"\n  {command} " in result.out
    assert "Exit codes: 0 ok; 1 drift or pending change; 2 bad input or usage" in result.out


def test_each_command_has_help() -> None:
    for command in ("generate", "check", "plan"):
        result = run_cli(command, "--help")
        assert result.code == 0
        for option in ("--users", "--containers", "--out", "--json"):
            assert option in result.out


def test_an_unknown_command_is_a_usage_error() -> None:
    result = run_cli("generat")
    assert result.code == 2
    assert result.err.startswith("error: devbox-ctl: no command is named 'generat'\n")
    assert "hint: did you mean generate?" in result.err  # near misses for verbs, as for options


def test_an_unknown_option_is_a_usage_error() -> None:
    result = run_cli("generate", "--user", "x")
    assert result.code == 2
    assert result.err.startswith("error: devbox-ctl generate: no such option --user\n")
    assert "--users" in result.err  # the near miss


def test_an_internal_error_is_one_line_without_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(paths: pipeline.Paths) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(pipeline, "build", broken)
    result = run_cli("generate")
    assert result.code == 70
    assert result.err == (
        "error: internal error: RuntimeError: boom\n"
        "hint: this is a bug in devbox-ctl; rerun with --debug and report the traceback\n"
    )
    with pytest.raises(RuntimeError, match="boom"):
        run_cli("generate", "--debug")


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(shell: str) -> None:
    result = run_cli("completion", shell)
    assert result.code == 0
    assert "_DEVBOX_CTL_COMPLETE" in result.out


def test_completion_help_lists_one_shell_a_line() -> None:
    result = run_cli("completion", "--help")
    assert result.code == 0
    assert "\\b" not in result.out
    assert '  bash: eval "$(devbox-ctl completion bash)"   (e.g. in ~/.bashrc)\n' in result.out
    assert '  zsh:  eval "$(devbox-ctl completion zsh)"    (e.g. in ~/.zshrc)\n' in result.out


def test_completion_completes_commands() -> None:
    console = console_script()
    result = subprocess.run(
        [console],
        env={
            **os.environ,
            "_DEVBOX_CTL_COMPLETE": "bash_complete",
            "COMP_WORDS": "devbox-ctl pl",
            "COMP_CWORD": "1",
        },
        capture_output=True,
        text=True,
        check=False,
    )
    assert "plain,plan" in result.stdout


def test_the_console_script_runs_the_example(tmp_path: Path, nix: str) -> None:
    console = console_script()
    example = tmp_path / "basic"
    writable_copy(REPO / "examples/basic", example, "generated")
    plan = subprocess.run(
        [console, "plan"], cwd=example, capture_output=True, text=True, check=False
    )
    assert plan.returncode == 1, plan.stderr
    assert plan.stdout.startswith("No generated tree yet: everything is new.\nPlan: 3 to add")
    generate = subprocess.run(
        [console, "generate"], cwd=example, capture_output=True, text=True, check=False
    )
    assert generate.returncode == 0, generate.stderr
    assert generate.stdout.endswith(
        "Wrote generated: 9 created, 0 updated, 0 unchanged, 0 removed.\n"
    )
    check = subprocess.run(
        [console, "check"], cwd=example, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0


def test_bad_input_from_the_console_script_has_no_traceback(tmp_path: Path, nix: str) -> None:
    console = console_script()
    (tmp_path / "users.nix").write_text("{ users.alice.uid = 1001; }")
    (tmp_path / "containers.json").write_text('{"version": 1, "containers": [{"name": "Bad"}]}')
    result = subprocess.run(
        [console, "generate"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: containers.json: containers[0].name:")
    assert not (tmp_path / "generated").exists()


def test_help_imports_no_heavy_library() -> None:
    """--help stays fast (the benchmark measures it) because no command imports these early."""
    probe = (
        "import sys, contextlib, io\n"
        "from devbox.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])\n"
        "heavy = sorted(m for m in ('pydantic', 'jinja2', 'deepdiff') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-5", "86401"])
@pytest.mark.parametrize(
    "verb",
    [
        ["create", "web"],
        ["rotate-key", "web"],
        ["restore", "web"],
        ["fleet-host", "relogin", "web", "alice"],
    ],
    ids=["create", "rotate-key", "restore", "fleet-host-relogin"],
)
def test_a_wait_that_is_not_a_number_of_seconds_is_refused(
    verb: list[str], value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """NaN and infinity are floats to click: a wait of either never ends, or ends at once.

    As root runs the verb (a user's own devbox-ctl hands the line to sudo unparsed).
    """
    monkeypatch.setattr("os.geteuid", lambda: 0)
    result = run_cli(*verb, f"--timeout={value}")
    assert result.code == 2, result.err
    assert "is not a number of seconds" in result.err
