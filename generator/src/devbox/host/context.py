"""The runtime context of a verb that acts on the host: config, caller, declaration.

Built once per command from /etc/devbox/config.json (or $DEVBOX_CONFIG when not privileged)
and the caller's identity (identity.py). The declaration is the config repository's; on a fleet
member, which has none, it is the slice manifest deployed to it (deployed.py), and every
change to it is refused here: only the control host edits the fleet's declaration.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devbox.declare import edit
from devbox.declare.resolve import Container, Desired
from devbox.errors import InputError, Problem, UsageError
from devbox.host import deployed, events, hostconfig, identity
from devbox.tools import process
from devbox.tools.podman import Holdings, Podman

# How many names a "no container is named" message offers an admin (list --all shows all).
NAMED = 20


@dataclass
class Runtime:
    """What a runtime verb needs."""

    config: hostconfig.HostConfig
    caller: identity.Caller
    privileged: bool = False
    # `fleet-host`: this host's own side of a fleet verb, from its deployed slice even on the
    # control host (whose config repository declares the whole fleet).
    local: bool = False
    _desired: Desired | None = field(default=None, repr=False)
    _podman: str | None = field(default=None, repr=False)
    _known: dict[str, Holdings] = field(default_factory=dict, repr=False)

    @property
    def desired(self) -> Desired:
        """The declaration as it is now (read once)."""
        if self._desired is None:
            self._desired = declaration(self.config, local=self.local)
        return self._desired

    @property
    def deployed_only(self) -> bool:
        """Whether the declaration is this host's deployed slice (a member, or `fleet-host`)."""
        return self.local or self.config.member

    def refresh(self) -> Desired:
        """Read the declaration again (under the config lock, to decide on what is current)."""
        self._desired = declaration(self.config, local=self.local)
        return self._desired

    @property
    def source(self) -> str:
        """The file the declaration comes from, for messages."""
        if self.deployed_only:
            return str(self.config.deployed_manifest)
        return str(self.config.paths.containers)

    def require_declaration_here(self) -> None:
        """Exit 2 on a fleet member: its declaration is changed only on the control host."""
        if self.deployed_only:
            raise UsageError(hostconfig.MEMBER_REFUSAL)

    def change(self, change: Callable[[edit.Records], str], *, who: str | None = None) -> Desired:
        """Change containers.json (validated, regenerated, committed) and use the result.

        The change goes through declare.edit; the declaration it wrote replaces this runtime's.
        """
        self.require_declaration_here()
        edited = edit.edit(
            self.config.paths, self.config.repository, change, who=who or self.caller.name
        )
        self._desired = edited.desired
        return edited.desired

    def container(self, name: str) -> Container:
        """A declared container, or exit 2 naming the ones the caller may see."""
        found = self.desired.by_name().get(name)
        if found is None:
            raise InputError(
                [Problem(self.source, "", f"no container is named {name!r}", self._named())]
            )
        return found

    def _named(self) -> str:
        """The containers a caller who mistyped a name may mean: theirs, or (admins) all."""
        if self.caller.admin:
            every = [c.name for c in self.desired.containers]
            shown = ", ".join(every[:NAMED]) or "none yet (devbox-ctl create NAME --owner USER)"
            more = (
                f", and {len(every) - NAMED} more (devbox-ctl list --all)"
                if len(every) > NAMED
                else ""
            )
            return f"declared: {shown}{more}"
        mine = [c.name for c in self.desired.containers if c.owner == self.caller.name]
        return f"yours: {', '.join(mine) or 'none yet (devbox-ctl create NAME)'}"

    def podman(self, owner: str) -> Podman:
        """Podman as a user of users.nix, by the absolute path config.json gives (or PATH's)."""
        if self._podman is None:
            self._podman = process.absolute("podman", self.config.podman)
        return Podman(owner, self.desired.users[owner].uid, self._podman, self._known.get(owner))

    @contextlib.contextmanager
    def knowing(self, holdings: dict[str, Holdings]) -> Iterator[None]:
        """Within: podman's questions about these users' things come from their holdings.

        The holdings were read a moment ago (list). Only for reading: nothing that acts runs
        within.
        """
        self._known = holdings
        try:
            yield
        finally:
            self._known = {}

    def event(self, action: str, container: str, **details: Any) -> dict[str, Any]:
        """Append an event to the log, as this caller."""
        automatic = bool(details.pop("automatic", False))
        actor = "cleanup" if automatic else self.caller.name
        return events.record(self.config.events_file, action, container, actor, **details)


def declaration(config: hostconfig.HostConfig, *, local: bool = False) -> Desired:
    """The host's declaration: the config repository's, or what was deployed here.

    The deployed slice on a fleet member, and for `fleet-host` (local) on any fleet host.
    """
    if local or config.member:
        return deployed.current(config.deployed_manifest)
    return edit.current(config.paths)


def build(
    *,
    privileged: bool,
    sudo_uid: str | None,
    config_path: Path | None = None,
    local: bool = False,
) -> Runtime:
    """The runtime of this process (`local`: from this host's deployed slice)."""
    path = config_path or hostconfig.locate(privileged=privileged)
    config = hostconfig.load(path, privileged=privileged)
    desired = declaration(config, local=local)
    caller = identity.identify(identity.system_uid(sudo_uid if privileged else None), desired.users)
    return Runtime(
        config=config, caller=caller, privileged=privileged, local=local, _desired=desired
    )
