"""The host test's activation script (tests/system/guest/activate.sh) follows the NixOS module.

activate.sh does, on the Debian guest, what nixos/orchestrator.nix and orchestrator-cleanup.nix
make NixOS do on a switch. Its "mirrors:" lines name the options the module's `config` sets,
and two lines list the attributes of the module's per-user services; a module change that adds,
removes or renames one of them, without the same change in the script, fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODULES = [REPO / "nixos" / "orchestrator.nix", REPO / "nixos" / "orchestrator-cleanup.nix"]
ACTIVATE = REPO / "tests" / "system" / "guest" / "activate.sh"

# An attribute set at the first level inside a block: `    name.path = …` (4 spaces in).
ATTRIBUTE = re.compile(r"^    ([A-Za-z][\w.-]*) =", re.MULTILINE)


def block(text: str, opening: str) -> str:
    """The text of the attribute set that starts at the line `opening` (to its closing brace)."""
    start = text.index(opening)
    depth = 0
    for index in range(start + len(opening) - 1, len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return text[start:index]
    raise AssertionError(f"no end of the block {opening!r}")


def module_config_options() -> set[str]:
    options: set[str] = set()
    for module in MODULES:
        options |= set(ATTRIBUTE.findall(block(module.read_text(), "  config = mkIf cfg.enable {")))
    return options


def module_service_attributes(name: str) -> set[str]:
    text = (REPO / "nixos" / "orchestrator.nix").read_text()
    opening = f"  {name} = name: user: {{"
    return set(ATTRIBUTE.findall(block(text, opening)))


def script_list(prefix: str) -> set[str]:
    found = re.findall(
        rf"^# {re.escape(prefix)}:? (\S.*?)(?: \(|$)", ACTIVATE.read_text(), re.MULTILINE
    )
    return {word for line in found for word in line.split()}


def test_every_option_the_module_sets_has_a_step_in_the_activation() -> None:
    mirrored = set(re.findall(r"^# mirrors: (\S+)", ACTIVATE.read_text(), re.MULTILINE))
    assert mirrored == module_config_options()


def test_the_image_service_has_the_module_attributes() -> None:
    assert script_list("imageService") == module_service_attributes("imageService")


def test_the_apply_service_has_the_module_attributes() -> None:
    assert script_list("applyService") == module_service_attributes("applyService")


def test_the_lists_are_not_empty() -> None:
    # A parser that finds nothing would make the comparisons above pass for the wrong reason.
    assert {"users.users", "environment.etc", "systemd.services", "systemd.packages"} <= (
        module_config_options()
    )
    assert {"restartTriggers", "serviceConfig"} <= module_service_attributes("applyService")
