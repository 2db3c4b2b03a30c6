"""Pins: exemptions from idle stop and auto-destroy through the end of a day (UTC).

`devbox-ctl pin NAME --until DATE --reason TEXT` pins, `unpin NAME` ends a pin.

A pin is part of the declaration (containers.json `pin`), changed through declare.edit, so
its history is the config repository's. Users pin their own containers, admins any. A pin
reaches at most maxPinDays ahead, and each user holds at most maxPinsPerUser pins (counted
by the containers' owner; validation is the backstop).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from devbox import clock, rules
from devbox.declare import edit, resolve
from devbox.declare.resolve import Container
from devbox.errors import UsageError
from devbox.host.context import Runtime
from devbox.host.identity import authorize


def _check(rt: Runtime, container: Container, until: date, reason: str, now: datetime) -> None:
    policy = rt.desired.policy
    today = now.date()
    if until < today:
        raise UsageError(f"{until.isoformat()} has passed", hint="pin until today or later")
    latest = today + timedelta(days=policy.max_pin_days)
    if until > latest:
        raise UsageError(
            f"a pin reaches at most {policy.max_pin_days} days ahead: {latest.isoformat()}",
            hint="pin until then and pin again later, or ask an admin to raise "
            "containers.maxPinDays in users.nix",
        )
    issue = rules.single_line(reason)
    if issue:
        raise UsageError(f"--reason {issue[0]}", hint=issue[1])
    held = sorted(
        c.name
        for c in rt.desired.containers
        if c.owner == container.owner and c.pin is not None and c.name != container.name
    )
    if len(held) >= policy.max_pins_per_user:
        raise UsageError(
            f"{container.owner} already holds {rules.count(len(held), 'pin')} "
            f"({', '.join(held)}), the limit of {policy.max_pins_per_user}",
            hint=f"unpin one first (devbox-ctl unpin {held[0]}), or ask an admin to raise "
            "containers.maxPinsPerUser in users.nix"
            if held
            else "ask an admin to raise containers.maxPinsPerUser in users.nix",
        )


def pin(rt: Runtime, name: str, until: date, reason: str, now: datetime) -> Container:
    """Pin a container until the end of a day; return it as now declared."""
    container = rt.container(name)
    authorize(rt.caller, container.owner, name, "pin")
    reason = reason.strip()
    _check(rt, container, until, reason, now)
    previous = container.pin

    def change(records: edit.Records) -> str:
        pin = {"until": clock.day(until), "reason": reason}
        edit.required(records, container)["pin"] = pin
        return f"devbox: {rt.caller.name} pinned {name} until {clock.day(until)}: {reason}"

    rt.change(change)
    rt.event(
        "pin",
        name,
        owner=container.owner,
        until=clock.day(until),
        reason=reason,
        previous=resolve.pin_json(previous),
    )
    return rt.container(name)


def unpin(rt: Runtime, name: str) -> Container:
    """End a container's pin (no error if it has none)."""
    container = rt.container(name)
    authorize(rt.caller, container.owner, name, "unpin")
    if container.pin is None:
        return container
    previous = container.pin

    def change(records: edit.Records) -> str:
        edit.required(records, container).pop("pin", None)
        return f"devbox: {rt.caller.name} unpinned {name}"

    rt.change(change)
    rt.event(
        "unpin",
        name,
        owner=container.owner,
        previous=resolve.pin_json(previous),
    )
    return rt.container(name)


def pinned(rt: Runtime) -> list[dict[str, Any]]:
    """`pin --list`: the pins the caller may see (admins: all)."""
    return [
        {
            "name": c.name,
            "owner": c.owner,
            "until": clock.day(c.pin.until),
            "reason": c.pin.reason,
        }
        for c in rt.desired.containers
        if c.pin is not None and rt.caller.may_act_on(c.owner)
    ]
