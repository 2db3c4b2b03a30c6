"""Who is calling, taken from the system, and what they may do.

The caller is the real uid of the process, or, under the privileged path, the uid sudo
recorded in SUDO_UID (sudo sets it itself; the caller cannot choose it). The uid is looked up
in users.nix, which also says who is an admin; nothing in the caller's environment counts.
Root without sudo (the cleanup timer, an admin's root shell) acts as the system, on all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from devbox import rules
from devbox.declare.models import User
from devbox.errors import NotAllowedError

SYSTEM = "root"


@dataclass(frozen=True)
class Caller:
    """A person (a users.nix user) or the system."""

    uid: int
    name: str
    admin: bool

    @property
    def is_system(self) -> bool:
        """Root acting without sudo: the cleanup timer or an admin's root shell."""
        return self.uid == 0

    def may_act_on(self, owner: str) -> bool:
        """Users act on their own containers; admins and the system on all."""
        return self.admin or self.name == owner


def identify(uid: int, users: dict[str, User]) -> Caller:
    """The caller with this uid, as users.nix knows them."""
    if uid == 0:
        return Caller(0, SYSTEM, admin=True)
    for name, user in users.items():
        if user.uid == uid:
            return Caller(uid, name, admin=user.admin)
    raise NotAllowedError(
        f"uid {uid} is not a user in users.nix",
        hint="ask an admin to add you to users.nix in the config repository",
    )


def system_uid(sudo_uid: str | None) -> int:
    """The caller's uid: SUDO_UID under the privileged path, else the process's real uid."""
    if sudo_uid is None:
        return os.getuid()
    if not rules.uid(sudo_uid):
        raise NotAllowedError(f"SUDO_UID is {sudo_uid!r}, not a uid")
    return int(sudo_uid)


def authorize(caller: Caller, owner: str, container: str, action: str) -> None:
    """Refuse (exit 4) unless the caller may act on the container."""
    if not caller.may_act_on(owner):
        raise NotAllowedError(
            f"{caller.name} may not {action} {container}: it belongs to {owner}",
            hint="users act on their own containers; admins (users.nix admin = true) on all",
        )
