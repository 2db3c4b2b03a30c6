"""The control host's link to the hosts of a fleet: SSH to their devbox-ctl, and deploying.

In a fleet (users.nix declares `hosts`, docs/fleet.md) the control host holds the config
repository and changes the declaration as a single host does. What must happen on a host (a
key into its podman secret, a volume exported or imported, a snapshot and removal, its view
of its containers) is that host's own devbox-ctl, run over SSH as root (`fleet-host`,
runtime/fleet_host.py) with JSON between them: OpenSSH as on every NixOS host, no new daemon.
The rebuild is the configured deploy tool (colmena by default), run for the hosts whose
slice changed, one after the other; a host that fails leaves the others applied.

A host that does not answer is said to be unreachable, never taken for a host without
containers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from devbox import write
from devbox.declare import edit, manifest
from devbox.errors import InputError, Problem, ToolError, UsageError
from devbox.host.context import Runtime
from devbox.tools import deploy as deploy_tool
from devbox.tools import ssh

Progress = Callable[[str], None]
# How long the control host waits for a host. A host bounds its own reading of users'
# volumes, each container's budget inside its owner's inside the whole run's (list and
# status: runtime/listing.py; cleanup: runtime/cleanup.py), so when one user's data stalls it
# still answers for everyone else, with what ran out said to be unknown. Each wait is longer
# than what the host may take: its run's budget, plus ssh's ConnectTimeout (10 s in the
# default sshCommand, hostconfig.DEFAULT_SSH), plus a margin for starting devbox-ctl, podman
# and, in a cleanup, the warnings it sends. So the host's own budget always ends first and its
# answer arrives; tests/runtime/test_budgets.py checks these sums.
CONNECT_SECONDS = 10
# A question (list: 120 s of reading; status: 130 s), with a margin of 60 s.
READ_TIMEOUT = 200.0
# A host's cleanup run (30 min of reading), with a margin of 10 min.
CLEANUP_TIMEOUT = 40 * 60.0
# An action on one container (a key, a purge and its snapshot), and a volume's copy between
# two hosts (a deploy is not bounded here: the deploy tool has its own, and a build may be long).
ACT_TIMEOUT = 600.0
TRANSFER_TIMEOUT = 6 * 3600.0
# Parallel questions to hosts (list, every host's deployed slice).
FANOUT = 16


def is_fleet(rt: Runtime) -> bool:
    """Whether this host runs the fleet's verbs (the control host of a declared fleet)."""
    if rt.local or not rt.desired.fleet:
        return False
    if rt.config.role == "single":
        raise UsageError(
            "users.nix declares hosts (a fleet), but this host is set up as a single host",
            hint="on the control host set services.devbox.fleet.control = true, and give every "
            "host its slice (docs/fleet.md)",
        )
    return rt.config.role == "control"


def require_fleet(rt: Runtime) -> None:
    """The fleet's own verbs (deploy, move, drain) run on its control host only."""
    if not rt.desired.fleet:
        raise UsageError("this is a single host: users.nix declares no hosts", hint="docs/fleet.md")
    if rt.config.role != "control":
        raise UsageError(
            f"this host's role is {rt.config.role!r}: the fleet's verbs run on its control host",
            hint="run devbox-ctl there (services.devbox.fleet.control)",
        )


def authorize_admin(rt: Runtime, action: str) -> None:
    """Admins and root only."""
    if not rt.caller.admin:
        raise UsageError(f"only admins (users.nix admin = true) may {action}")


def remote(rt: Runtime, host: str) -> ssh.Remote:
    """How to reach a host's devbox-ctl."""
    declared = rt.desired.hosts.get(host)
    if declared is None:
        raise UsageError(
            f"{host!r} is not a host in users.nix",
            hint=f"hosts: {', '.join(rt.desired.hosts) or 'none'}",
        )
    return rt.config.remote(host, declared.reach)


def ask(
    rt: Runtime,
    host: str,
    args: Sequence[str],
    *,
    stdin: str | None = None,
    timeout: float | None = None,
    codes: tuple[int, ...] = (0,),
) -> ssh.Reply:
    """Run `fleet-host ARGS` on a host; unreachable, or an exit not in `codes`: a ToolError.

    It may take `timeout` seconds, by default READ_TIMEOUT.
    """
    wait = READ_TIMEOUT if timeout is None else timeout
    reply = ssh.run(remote(rt, host), ["fleet-host", *args], timeout=wait, stdin=stdin)
    if isinstance(reply, ssh.Unreachable):
        raise ToolError(
            str(reply),
            hint=f"check that root on this host reaches it: ssh {reply.reach} true; "
            "then run the same devbox-ctl command again (it resumes)",
        )
    if reply.returncode not in codes:
        raise ToolError(f"on {host}: {reply.message}")
    return reply


def ask_json(rt: Runtime, host: str, args: Sequence[str], **options: Any) -> Any:
    """`ask`, reading its one JSON document."""
    reply = ask(rt, host, args, **options)
    try:
        return json.loads(reply.stdout)
    except ValueError as exc:
        raise ToolError(f"on {host}: devbox-ctl answered no JSON ({exc})") from exc


def ask_all(
    rt: Runtime, hosts: Iterable[str], args: Sequence[str], *, timeout: float | None = None
) -> dict[str, ssh.Reply | ssh.Unreachable]:
    """Ask several hosts at once (READ_TIMEOUT unless told); each answers or is unreachable."""
    names = sorted(set(hosts))
    wait = READ_TIMEOUT if timeout is None else timeout

    def one(host: str) -> ssh.Reply | ssh.Unreachable:
        return ssh.run(remote(rt, host), ["fleet-host", *args], timeout=wait)

    if not names:
        return {}
    with ThreadPoolExecutor(max_workers=min(FANOUT, len(names))) as pool:
        return dict(zip(names, pool.map(one, names), strict=True))


def _index(rt: Runtime) -> dict[str, Any]:
    """The committed fleet index (generated/manifest.json): each slice's hash."""
    path = rt.config.paths.out / manifest.FILENAME
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        hosts: dict[str, Any] = document["fleet"]["hosts"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(
            [Problem(str(path), "fleet", f"cannot be read ({exc})", "run devbox-ctl generate")]
        ) from exc
    return hosts


def slice_hashes(rt: Runtime) -> dict[str, str]:
    """Each host's slice manifest hash, as committed."""
    return {host: entry["manifestSha256"] for host, entry in _index(rt).items()}


def changed_by(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The hosts whose slice differs between two fleet indexes."""
    return sorted(h for h in after if before.get(h) != after[h])


def undeployed(rt: Runtime, hosts: Iterable[str] | None = None) -> dict[str, str]:
    """The hosts whose deployed slice is not the committed one, each with why."""
    committed = slice_hashes(rt)
    names = sorted(committed if hosts is None else set(hosts))
    answers = ask_all(rt, names, ["deployed"])
    behind: dict[str, str] = {}
    for host, answer in answers.items():
        if isinstance(answer, ssh.Unreachable):
            behind[host] = f"unreachable ({answer.reason})"
            continue
        try:
            deployed = json.loads(answer.stdout).get("manifestSha256") if answer.ok else None
        except (ValueError, AttributeError):
            deployed = None
        if not answer.ok:
            behind[host] = f"did not say what it runs ({answer.message})"
        elif deployed != committed.get(host):
            behind[host] = "runs another slice" if deployed else "has no slice deployed"
    return behind


@dataclass
class Deployment:
    """What a deploy did: the hosts applied and the ones that failed, with why."""

    applied: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def retry(self) -> str:
        """The command that deploys what failed."""
        return "devbox-ctl deploy " + " ".join(sorted(self.failed))


def deploy_command(rt: Runtime, host: str) -> list[str]:
    """The deploy tool's argv for one host."""
    return deploy_tool.command(
        rt.config.deploy_command,
        host=host,
        reach=rt.desired.hosts[host].reach,
        flake=rt.config.repository,
    )


def deploy_hosts(
    rt: Runtime, hosts: Iterable[str], *, apply: bool = True, progress: Progress = print
) -> Deployment:
    """Deploy each host with the configured tool, one after the other; go on past a failure.

    One at a time: the deploy tools build on this host, and two builds at once only compete.
    """
    done = Deployment()
    for host in sorted(set(hosts)):
        argv = deploy_command(rt, host)
        if not apply:
            progress(f"Not applied (--no-apply). To deploy {host}: {' '.join(argv)}")
            continue
        progress(f"Deploying {host}: {' '.join(argv)}")
        with write.locked(write.ensure_directory(rt.config.state_dir)):
            result = deploy_tool.run(argv, rt.config.repository, lambda line: progress(f"  {line}"))
        if result.ok:
            done.applied.append(host)
        else:
            done.failed[host] = f"{argv[0]} exited {result.returncode}"
            progress(f"Deploying {host} failed ({argv[0]} exited {result.returncode}).")
    return done


def require_deployed(done: Deployment) -> None:
    """A deploy that failed on some host is an error naming it and the retry; others stay."""
    if done.failed:
        which = ", ".join(f"{host} ({why})" for host, why in sorted(done.failed.items()))
        kept = f"; {', '.join(done.applied)} applied" if done.applied else ""
        raise ToolError(
            f"deploying failed on {which}{kept}",
            hint=f"the change is committed; fix what the output above says, then run "
            f"`{done.retry()}`",
        )


def deploy(
    rt: Runtime, hosts: Sequence[str] = (), *, progress: Progress = print
) -> tuple[Deployment, dict[str, str]]:
    """`devbox-ctl deploy [HOST…]`: deploy the named hosts, or every host that is behind."""
    authorize_admin(rt, "deploy the fleet")
    for host in hosts:
        remote(rt, host)  # a name that is not a host is refused before anything runs
    behind = dict.fromkeys(hosts, "asked for by name") if hosts else undeployed(rt)
    if not behind:
        progress("Every host runs its committed slice; nothing to deploy.")
        return Deployment(), {}
    for host, why in sorted(behind.items()):
        progress(f"Will deploy {host}: {why}.")
    done = deploy_hosts(rt, behind, progress=progress)
    return done, behind


def edit_and_deploy(
    rt: Runtime,
    change: Callable[[edit.Records], str],
    *,
    apply: bool,
    progress: Progress,
    also: Iterable[str] = (),
) -> Deployment:
    """Change the declaration, then deploy the hosts whose slice it changed (and `also`)."""
    before = slice_hashes(rt)
    rt.change(change)
    hosts = set(changed_by(before, slice_hashes(rt))) | set(also)
    done = deploy_hosts(rt, hosts, apply=apply, progress=progress)
    require_deployed(done)
    return done
