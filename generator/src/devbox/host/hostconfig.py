"""/etc/devbox/config.json: where the config repository is and how to act on the host.

The NixOS module writes it (docs/host-config.md). It names files and commands, never a
secret. DEVBOX_CONFIG names another file, except under the privileged path, which reads only
the system file. It also holds the whole environment of the programs the privileged path runs
(`privilegedEnvironment`): root's choice, so nothing of the caller's reaches them.

In a fleet (docs/fleet.md) it also says the host's `role` and `hostName`, and holds the argv
templates the control host runs: `deployCommand` (per host), `sshCommand` and `remoteCommand`
(to reach a host's own devbox-ctl). A member holds no config repository (`configRepo` null).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from devbox import rules
from devbox.declare import pipeline
from devbox.declare.models import Model
from devbox.declare.schema_errors import problems
from devbox.errors import InputError, Problem, UsageError
from devbox.tools import ssh, templates

SYSTEM_CONFIG = Path("/etc/devbox/config.json")
# What a fleet member says to a verb that would change the declaration (exit 2).
MEMBER_REFUSAL = "this host is a member of a fleet: run devbox-ctl on the control host"
ENVIRONMENT_VARIABLE = "DEVBOX_CONFIG"


def _absolute(value: object) -> object:
    """A path in the config is absolute: it must not depend on the caller's directory."""
    if isinstance(value, str):
        if not value.startswith("/"):
            raise PydanticCustomError(
                "devbox", f"{value!r} is not an absolute path", {"fix": "write it from /"}
            )
        return Path(value)
    return value


AbsolutePath = Annotated[Path, BeforeValidator(_absolute)]
# Where NixOS puts setuid wrappers and the system's programs: root's, like the rest of it.
DEFAULT_PATH = "/run/wrappers/bin:/run/current-system/sw/bin"
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _problem(message: str, fix: str) -> PydanticCustomError:
    return PydanticCustomError("devbox", message, {"fix": fix})


DEFAULT_DEPLOY = ("colmena", "apply", "--on", "{host}")
DEFAULT_SSH = ("ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "--", "{reach}")
DEFAULT_REMOTE = ("devbox-ctl",)


def _template(
    value: list[str], allowed: tuple[str, ...], needs: tuple[str, ...], example: tuple[str, ...]
) -> list[str]:
    issue = templates.issue(value, allowed=allowed, needs=needs)
    if issue is not None:
        names = ", ".join(allowed[:-1]) + f" and {allowed[-1]}"
        raise _problem(
            f"{rules.show(value)} is not a command template: {issue}",
            f"write an argv, one line per word, in which only {names} are replaced, e.g. "
            + json.dumps(list(example)),
        )
    return value


class HostConfig(Model):
    """The host's devbox settings."""

    version: StrictInt
    # Null only on a fleet member: its declaration is the deployed slice manifest.
    config_repo: AbsolutePath | None
    users_file: StrictStr = "devbox/users.nix"
    containers_file: StrictStr = "devbox/containers.json"
    generated_dir: StrictStr = "devbox/generated"
    # Default: the flake in the config repository, named explicitly (a rebuild without it
    # would take the configuration from NIX_PATH or the working directory).
    rebuild_command: list[StrictStr]
    op_token_file: AbsolutePath | None = None
    op_vault: StrictStr | None = None
    tailscale_api_key_file: AbsolutePath | None = None
    tailscale_api_url: StrictStr = "https://api.tailscale.com"
    tailnet: StrictStr = "-"
    state_dir: AbsolutePath = Path("/var/lib/devbox")
    privileged_command: StrictStr | None = None
    deployed_manifest: AbsolutePath = Path("/etc/devbox/manifest.json")
    # podman's absolute path, for the commands devbox runs in a user's systemd manager, which
    # does not search root's PATH (docs/host-config.md); None: the podman on PATH.
    podman: AbsolutePath | None = None
    privileged_environment: dict[StrictStr, StrictStr] = Field(
        default_factory=lambda: {"PATH": DEFAULT_PATH}
    )
    role: Literal["single", "control", "member"] = "single"
    host_name: StrictStr | None = None
    deploy_command: list[StrictStr] = Field(default_factory=lambda: list(DEFAULT_DEPLOY))
    ssh_command: list[StrictStr] = Field(default_factory=lambda: list(DEFAULT_SSH))
    remote_command: list[StrictStr] = Field(default_factory=lambda: list(DEFAULT_REMOTE))

    @model_validator(mode="before")
    @classmethod
    def _default_rebuild(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and "rebuildCommand" not in raw and "rebuild_command" not in raw:
            repo = raw.get("configRepo", raw.get("config_repo"))
            # A member has no repository: its rebuild names no flake it does not have.
            command = (
                ["nixos-rebuild", "switch", "--flake", repo]
                if isinstance(repo, str)
                else ["nixos-rebuild", "switch"]
            )
            return {**raw, "rebuildCommand": command}
        return raw

    @field_validator("deploy_command")
    @classmethod
    def _deploy(cls, value: list[str]) -> list[str]:
        return _template(value, templates.PLACEHOLDERS, ("{host}", "{reach}"), DEFAULT_DEPLOY)

    @field_validator("ssh_command")
    @classmethod
    def _ssh(cls, value: list[str]) -> list[str]:
        # The member has no config repository: {flake} means nothing on its side.
        return _template(value, ("{host}", "{reach}"), ("{host}", "{reach}"), DEFAULT_SSH)

    @field_validator("remote_command")
    @classmethod
    def _remote(cls, value: list[str]) -> list[str]:
        return _template(value, ("{host}", "{reach}"), (), DEFAULT_REMOTE)

    @field_validator("host_name")
    @classmethod
    def _host_name(cls, value: str | None) -> str | None:
        issue = rules.container_name(value) if value is not None else None
        if issue is not None:
            raise _problem(f"host name {issue[0]}", issue[1])
        return value

    @model_validator(mode="after")
    def _role(self) -> HostConfig:
        if self.role == "single" and self.host_name is not None:
            raise _problem(
                f'hostName {self.host_name!r} is set on a single host (role "single")',
                'set role to "control" or "member", or hostName to null',
            )
        if self.role != "single" and self.host_name is None:
            raise _problem(
                f"hostName is null on a fleet host (role {self.role!r})",
                "set hostName to this host's name in users.nix hosts (services.devbox.hostName)",
            )
        if self.config_repo is None and self.role != "member":
            raise _problem(
                f"configRepo is null on a host with role {self.role!r}",
                "set configRepo to the config repository; only a fleet member "
                '(role "member") has none',
            )
        return self

    @field_validator("op_vault")
    @classmethod
    def _vault(cls, value: str | None) -> str | None:
        issue = rules.reference_part(value) if value is not None else None
        if issue is not None:
            raise _problem(*issue)
        return value

    @field_validator("rebuild_command")
    @classmethod
    def _rebuild(cls, value: list[str]) -> list[str]:
        if not value or any(rules.single_line(word) is not None for word in value):
            raise _problem(
                f"{rules.show(value)} is not a command",
                'write an argv, e.g. ["nixos-rebuild", "switch", "--flake", "/etc/nixos"]',
            )
        return value

    @field_validator("privileged_environment")
    @classmethod
    def _environment(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _VARIABLE.fullmatch(name) or rules.single_line(text, 4000):
                raise _problem(
                    f"{rules.show(name)}={rules.show(text)} is not an environment variable",
                    "use NAME=one line of text",
                )
        path = value.get("PATH", "")
        if not path or not all(entry.startswith("/") for entry in path.split(":")):
            raise _problem(
                f"PATH {rules.show(path)} is not a list of absolute directories",
                f'set it, e.g. "{DEFAULT_PATH}"',
            )
        return value

    def remote(self, host: str, reach: str) -> ssh.Remote:
        """How this (control) host reaches a fleet host's devbox-ctl."""
        return ssh.Remote(host, reach, tuple(self.ssh_command), tuple(self.remote_command))

    @property
    def member(self) -> bool:
        """Whether this host is a fleet member: its declaration is what was deployed to it."""
        return self.role == "member"

    @property
    def repository(self) -> Path:
        """The config repository; a member has none (exit 2 saying where to act instead)."""
        if self.config_repo is None:
            raise UsageError(MEMBER_REFUSAL)
        return self.config_repo

    @property
    def paths(self) -> pipeline.Paths:
        """users.nix, containers.json and generated/ inside the config repository."""
        repo = self.repository
        return pipeline.Paths(
            users=repo / self.users_file,
            containers=repo / self.containers_file,
            out=repo / self.generated_dir,
            users_cache=self.state_dir / "cache" / "users-nix.json",
        )

    @property
    def events_file(self) -> Path:
        """The append-only event log."""
        return self.state_dir / "events.jsonl"

    @property
    def snapshots_dir(self) -> Path:
        """Volume exports kept before a destroy."""
        return self.state_dir / "snapshots"


def load(path: Path, *, privileged: bool = False) -> HostConfig:
    """Read and validate a host config file.

    privileged: read for devbox-privileged, which reads only SYSTEM_CONFIG (locate): the
    message never offers it a variable it ignores.
    """
    if not path.is_file():
        elsewhere = "" if privileged else f", or point {ENVIRONMENT_VARIABLE} at a config file"
        raise InputError(
            [
                Problem(
                    str(path),
                    "",
                    "not found",
                    f"enable services.devbox in the NixOS configuration{elsewhere} "
                    "(docs/host-config.md)",
                )
            ]
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError([Problem(str(path), "", f"cannot be read ({exc})", "")]) from exc
    try:
        return HostConfig.model_validate(raw)
    except ValidationError as exc:
        raise InputError(problems(HostConfig, exc, str(path))) from exc


def locate(*, privileged: bool) -> Path:
    """The config file to read: the system one, or $DEVBOX_CONFIG when not privileged."""
    if privileged:
        return SYSTEM_CONFIG
    return Path(os.environ.get(ENVIRONMENT_VARIABLE) or SYSTEM_CONFIG)
