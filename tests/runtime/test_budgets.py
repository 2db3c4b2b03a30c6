"""A host's time budgets for users' volumes, and the control host's waits for a host.

A host reads each container within its budget, inside its owner's, inside the whole run's
(runtime/listing.py for list and status, runtime/cleanup.py for cleanup), so one user whose
volumes stall spends their own time only. The control host of a fleet must wait longer than
all of it: a host's run budget, plus ssh's ConnectTimeout in the default sshCommand, plus a
margin (starting devbox-ctl, podman, and in a cleanup the warnings). A wait shorter than that
throws away the answer of a host that was about to answer for everyone (docs/security.md,
"Time budgets"). tests/attacks/test_attack_fleet_budgets.py shows it on a fleet.
"""

from __future__ import annotations

import time

import pytest

from devbox import volume
from devbox.host import fleet as link
from devbox.host import hostconfig
from devbox.lifecycle import assessment
from devbox.runtime import cleanup, listing

# The least a wait must leave beyond a host's reading budget and ssh's connecting: for a
# question (devbox-ctl's start, podman's answers), and for a cleanup (its warnings too).
READ_MARGIN = 30
CLEANUP_MARGIN = 5 * 60


def connect_timeout() -> int:
    """ConnectTimeout in the module's default sshCommand (hostconfig.DEFAULT_SSH)."""
    (option,) = [word for word in hostconfig.DEFAULT_SSH if word.startswith("ConnectTimeout=")]
    return int(option.removeprefix("ConnectTimeout="))


def test_the_control_host_says_the_same_connect_timeout_as_the_default_ssh_command() -> None:
    assert connect_timeout() == link.CONNECT_SECONDS


def test_the_control_host_waits_longer_than_a_hosts_list_or_status_may_take() -> None:
    longest = max(listing.LIST_BUDGET_SECONDS, listing.STATUS_BUDGET_SECONDS)
    assert listing.STATUS_BUDGET_SECONDS == (
        assessment.CONTAINER_BUDGET_SECONDS + listing.SHADOW_BUDGET_SECONDS
    )
    assert longest + connect_timeout() + READ_MARGIN <= link.READ_TIMEOUT


def test_the_control_host_waits_longer_than_a_hosts_cleanup_may_take() -> None:
    assert cleanup.RUN_BUDGET_SECONDS + connect_timeout() + CLEANUP_MARGIN <= link.CLEANUP_TIMEOUT


def test_each_budget_fits_in_the_one_around_it_with_room_for_another_user() -> None:
    """A container's whole budget fits in its owner's; one owner's leaves another's whole."""
    assert listing.LIST_CONTAINER_BUDGET_SECONDS <= listing.LIST_USER_BUDGET_SECONDS
    assert 2 * listing.LIST_USER_BUDGET_SECONDS <= listing.LIST_BUDGET_SECONDS
    assert assessment.CONTAINER_BUDGET_SECONDS <= cleanup.USER_BUDGET_SECONDS
    assert 2 * cleanup.USER_BUDGET_SECONDS <= cleanup.RUN_BUDGET_SECONDS


def test_an_owners_budget_starts_at_their_first_container_and_ends_with_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cleanup, "USER_BUDGET_SECONDS", 100)
    run = volume.Budget.of(50, "the run's")
    shares = cleanup._Shares(run)
    alice = shares.of("alice")
    assert alice is shares.of("alice"), "an owner has one budget in a run"
    assert alice is run, "an owner's budget past the run's end is the run's"
    monkeypatch.setattr(cleanup, "USER_BUDGET_SECONDS", 10)
    bob = shares.of("bob")
    assert bob.what == "the time budget of 10 s for bob's containers"
    assert 9 < bob.deadline - time.monotonic() <= 10
