"""devbox-ctl plan: what a rebuild would change, container by container."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from devbox.cli.options import as_json, echo_json, inputs
from devbox.errors import ExitCode
from devbox.wording import counted, files_differ

if TYPE_CHECKING:
    from devbox.declare.plan import FieldChange, Plan

_MARKS = {"added": "+", "removed": "-", "changed": "~"}


def _value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _field_lines(changes: list[FieldChange], indent: str = "    ") -> list[str]:
    return [f"{indent}{c.field}: {_value(c.old)} → {_value(c.new)}" for c in changes]


def _drift_lines(plan: Plan, out: str) -> list[str]:
    if not plan.drifted:
        return []
    return [
        f"{out} has drifted: {files_differ(len(plan.drifted))} from what its "
        "manifest.json records (edited by hand?); devbox-ctl check shows the diff, "
        "devbox-ctl generate rewrites them:",
        *(f"    {path}" for path in plan.drifted),
    ]


def render_text(plan: Plan, out: str = "generated") -> list[str]:
    """The plan as people read it (a fleet's: host by host)."""
    if plan.hosts:
        lines = ["No generated tree yet: everything is new."] if plan.first else []
        if plan.from_single and plan.former_host:
            lines.append(
                f"{out} holds a single host's tree: it becomes host {plan.former_host}'s slice "
                "and is compared as that host's."
            )
        elif plan.from_single:
            lines.append(
                f"{out} holds a single host's tree, and no one host is declared to hold most "
                "of its containers: each host's slice is compared as new."
            )
        for name, host in plan.hosts.items():
            body = render_text(host, f"{out}/hosts/{name}")
            lines += [f"host {name}:", *(f"  {line}" for line in body)]
        return lines
    if not (plan.containers or plan.settings or plan.users or plan.other_files):
        return [
            f"No changes: {counted(plan.unchanged, 'container')} up to date.",
            *_drift_lines(plan, out),
        ]
    lines = [
        *(["No generated tree yet: everything is new."] if plan.first else []),
        f"Plan: {len(plan.of('added'))} to add, {len(plan.of('changed'))} to change, "
        f"{len(plan.of('removed'))} to remove, {plan.unchanged} unchanged.",
    ]
    for change in plan.containers:
        lines.append(f"{_MARKS[change.action]} {change.name} ({change.owner}): {change.effect}")
        lines += _field_lines(change.fields)
    if plan.users:
        lines += ["users:", *_field_lines(plan.users)]
    if plan.settings:
        lines += ["settings:", *_field_lines(plan.settings)]
    if plan.other_files:
        lines += ["other files:", *(f"    {path}" for path in plan.other_files)]
    return lines + _drift_lines(plan, out)


@click.command()
@inputs
@as_json
def command(users: Path | None, containers: Path | None, out: Path | None, as_json: bool) -> None:
    """Show what a rebuild would change, container by container.

    Compares what the inputs now resolve to with what the generated directory deploys:
    containers added, removed and changed (each changed field, old → new, and whether the
    container restarts), and the files of the generated directory that were edited by hand.
    Exit 0 when nothing would change, 1 when something would or the tree has drifted.
    """
    from devbox.declare import pipeline  # noqa: PLC0415 - keep --help fast
    from devbox.declare import plan as planning  # noqa: PLC0415 - keep --help fast

    paths = pipeline.Paths.choose(users, containers, out)
    result = pipeline.plan(paths)
    if as_json:
        echo_json(planning.as_json(result))
    else:
        click.echo("\n".join(render_text(result, paths.out.name)))
    if result.changed:
        sys.exit(ExitCode.CHANGES)
