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
    """Restart, start and stop exactly the containers of USER whose units changed.

    Run as root by the NixOS module's devbox-apply-<user> service after a switch; every other
    container of the user is left alone. Exit 3 when an action failed (nothing is recorded,
    so the next run retries everything).
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
        click.echo(f"{user}: nothing to do")
