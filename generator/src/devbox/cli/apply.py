"""devbox-ctl apply: restart exactly one user's containers whose units changed (run by NixOS)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option(
    "--manifest",
    "manifest_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("/etc/devbox/manifest.json"),
    show_default=True,
    help="The installed manifest.",
)
@click.option("--user", required=True, help="Whose containers to apply.")
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("/var/lib/devbox"),
    show_default=True,
    help="Where applied/<user>.json records what was applied.",
)
@click.option("--image", help="The image now deployed (its store path), recorded per user.")
@click.option(
    "--restart-on-image-change",
    is_flag=True,
    help="Restart every running container when --image differs from the last apply.",
)
def command(
    manifest_path: Path,
    user: str,
    state_dir: Path,
    image: str | None,
    restart_on_image_change: bool,
) -> None:
    """Bring USER's containers to their run state: restart, start and stop what changed.

    Run as root by the NixOS module's devbox-apply-<user> service at boot and after a switch
    that changed the user's units or declared states. A container whose declared state did not
    change keeps the run state stop and start set on this host; one whose run state is running
    is started if it is not (at boot, all of them). Exit 3 when an action failed (nothing is
    recorded, so the next run retries everything).
    """
    from devbox.host import restart  # noqa: PLC0415 - keep --help fast

    actions = restart.run(
        manifest_path,
        user,
        state_dir,
        image=image,
        restart_on_image_change=restart_on_image_change,
    )
    for verb, services in (
        ("stopped", actions.stop),
        ("restarted", actions.restart),
        ("started", actions.start),
    ):
        for service in services:
            name = service.removeprefix("container-").removesuffix(".service")
            click.echo(f"{verb} {service}: {actions.reasons.get(name, '')}")
    if actions.empty:
        click.echo(f"{user}: nothing changed")
    # Started with the others (a no-op for a unit that is active): at boot, these start here.
    for service in actions.keep_running:
        click.echo(f"running {service}: its run state is running")
