"""The escaping of values in unit files (unitfile.py), alone and through the real Quadlet."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

from devbox.declare import render, unitfile
from devbox.declare.resolve import Container
from support import quadlet_dryrun


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "plain"),
        ("100%", "100%%"),
        ("%h/%n", "%%h/%%n"),
        ("$HOME", "$HOME"),  # a setting is not an ExecStart: $ is literal there
        ("a b", "a b"),
    ],
)
def test_setting_escapes_specifiers(value: str, expected: str) -> None:
    assert unitfile.setting(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain=1", "plain=1"),
        ("A=100%", "A=100%%"),
        ("A=$HOME", "A=$$HOME"),
        ("A=b c", '"A=b c"'),
        ('A=q"uote', '"A=q\\"uote"'),
        ("A=back\\slash", '"A=back\\\\slash"'),
        ("A=semi;colon", '"A=semi;colon"'),
        ("", '""'),
        ("A=ünï", "A=ünï"),
    ],
)
def test_word_escapes_and_quotes(value: str, expected: str) -> None:
    assert unitfile.word(value) == expected


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\x00b", "a\tb", "a\x1bb", "a\u2028b"])
@pytest.mark.parametrize("escape", [unitfile.setting, unitfile.word])
def test_control_characters_are_refused(value: str, escape: object) -> None:
    with pytest.raises(unitfile.UnitValueError):
        escape(value)  # type: ignore[operator]


def test_a_value_without_a_filter_cannot_be_written() -> None:
    template = render.environment().from_string("Description={{ name }}\n")
    with pytest.raises(unitfile.UnitValueError, match="without the setting or word filter"):
        template.render(name="web")


def test_an_undefined_name_is_an_error() -> None:
    template = render.environment().from_string("Description={{ missing | setting }}\n")
    with pytest.raises(jinja2.UndefinedError):
        template.render()


def test_hostile_values_survive_quadlet_as_literal_text(tmp_path: Path, quadlet: str) -> None:
    """Values that validation would refuse, rendered anyway, stay literal after Quadlet.

    Quadlet copies Environment= and Label= words into ExecStart=, where systemd would expand
    `%h` and `$HOME`; the doubled forms reach ExecStart= intact, and systemd reads them as `%`
    and `$`.
    """
    owner = 'eve "the" %h $HOME \\ user'
    hostile = Container(
        name="web",
        owner=owner,
        uid=1001,
        cpu=2,
        memory="4G",
        syncthing=False,
        state="running",
        image="localhost/devbox/devcontainer:latest",
    )
    units = tmp_path / "units"
    units.mkdir()
    for path, content in render.container_units(hostile).items():
        (units / Path(path).name).write_bytes(content)
    output = quadlet_dryrun(quadlet, units)
    exec_start = next(line for line in output.splitlines() if "podman run " in line)
    assert '--env "DEVBOX_OWNER=eve \\"the\\" %%h $$HOME \\\\ user"' in exec_start
    assert '--label "devbox.owner=eve \\"the\\" %%h $$HOME \\\\ user"' in exec_start
    description = next(
        line for line in output.splitlines() if line.startswith("Description=devbox container")
    )
    assert description == 'Description=devbox container web of eve "the" %%h $HOME \\ user'
