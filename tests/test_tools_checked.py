"""docs/tools-checked.md lists every flag devbox and the image pass to an external program.

The flags are read from the code itself, not from a list kept beside it:
- Python (generator/src): every string literal that starts with "-" (an f-string by its
  literal head, `--label=` of `f"--label={key}"`) inside a list, a tuple or a call's
  arguments belongs to the program named last before it in the same list or call (the
  literal "podman", "systemd-run", …), to podman in a call on a Podman object, or else to
  the program the module drives (MODULE_PROGRAMS). click's own option declarations are the
  CLI's, not a program's. A flag that belongs to no program fails the test: the module
  needs a line in MODULE_PROGRAMS.
- Shell (the entrypoint and the scripts): in each command line, the words that start with
  "-" after a program's name, through the end of that simple command; a function that wraps
  a program (`ts() { tailscale …; }`) and an array of flags expanded into a command
  (`"${flags[@]}"`) count for that program.
A flag found so must appear, in backquotes, in the first column of the program's section of
docs/tools-checked.md ("## `program`").
"""

from __future__ import annotations

import ast
import re
import shlex
from collections import defaultdict
from pathlib import Path

import pytest

from support import REPO

DOC = REPO / "docs" / "tools-checked.md"
SOURCE = REPO / "generator" / "src" / "devbox"
SCRIPTS = [
    REPO / "containers" / "devcontainer" / "entrypoint.sh",
    REPO / "containers" / "devcontainer" / "update-zed-pin.sh",
    *sorted((REPO / "nixos" / "scripts").glob("*.sh")),
]
# The programs devbox runs (Python) and the image runs (shell) whose flags are checked.
PYTHON_PROGRAMS = {
    "podman",
    "systemd-run",
    "systemctl",
    "git",
    "op",
    "tailscale",
    "nix-instantiate",
    "nixos-rebuild",
    "sudo",
    "sh",
    "ssh",
    "colmena",
}
SHELL_PROGRAMS = {
    "tailscaled",
    "tailscale",
    "code-server",
    "syncthing",
    "curl",
    "podman",
    "nix-prefetch-url",
}
# A module whose flags sit in lists without the program's name: the program it drives.
MODULE_PROGRAMS = {
    "podman.py": "podman",
    "systemd.py": "systemctl",
    "work.py": "git",
    "gitrepo.py": "git",
    "onepassword.py": "op",
    "nix.py": "nix-instantiate",
    # The control host's fleet verbs pass the options of another host's devbox-ctl
    # (`fleet-host …` over ssh): devbox's own, checked end to end by tests/member/.
    "fleet.py": "devbox-ctl",
    "fleet_views.py": "devbox-ctl",
    "moves.py": "devbox-ctl",
}
# devbox-ctl's own options (cli/): not an external program's, not checked here.
OWN_CLI = "devbox-ctl"
SHELL_SEPARATORS = {"|", "||", "&&", ";", "&", "do", "then", "else", "{", "}", "(", ")"}

Found = dict[str, dict[str, list[str]]]  # program → flag → where


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else path.name


def _flag(node: ast.expr) -> str | None:
    """The flag a literal passes, without its value ("--label" of f"--label={k}")."""
    text = None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        text = node.value
    elif isinstance(node, ast.JoinedStr) and node.values:
        head = node.values[0]
        if isinstance(head, ast.Constant) and isinstance(head.value, str):
            text = head.value
    # An argv word has no blank in its name: "--since " of a message is prose.
    if text is None or not re.match(r"^--?[A-Za-z][\w-]*(=|$)", text):
        return None
    return text.split("=", 1)[0]


def _program(node: ast.expr) -> str | None:
    """A program's name, or a variable holding its path named after it (`git`, `podman`)."""
    if isinstance(node, ast.Constant) and node.value in PYTHON_PROGRAMS:
        return str(node.value)
    if isinstance(node, ast.Name) and node.id in PYTHON_PROGRAMS:
        return node.id
    return None


def _is_click(call: ast.Call) -> bool:
    func = call.func
    return isinstance(func, ast.Attribute) and ast.unparse(func.value) == "click"


def _on_podman(call: ast.Call) -> bool:
    func = call.func
    return isinstance(func, ast.Attribute) and "podman" in ast.unparse(func.value)


def python_flags(path: Path, found: Found, unattributed: list[str]) -> None:
    """The flags one module passes, by program."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    default = MODULE_PROGRAMS.get(path.name)
    if path.parent.name == "cli":
        default = default or OWN_CLI
    for node in ast.walk(tree):
        if isinstance(node, (ast.List, ast.Tuple)):
            elements, current = list(node.elts), None
        elif isinstance(node, ast.Call) and not _is_click(node):
            elements = list(node.args)
            current = "podman" if _on_podman(node) else None
        else:
            continue
        for item in elements:
            element = item.value if isinstance(item, ast.Starred) else item
            current = _program(element) or current
            flag = _flag(element)
            if flag is None:
                continue
            owner = current or default
            where = f"{_shown(path)}:{element.lineno}"
            if owner is None:
                unattributed.append(f"{where}: {flag}")
            else:
                found[owner].setdefault(flag, []).append(where)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    lines, start, buffer = [], 0, ""
    for number, line in enumerate(text.splitlines(), 1):
        if not buffer:
            start = number
        if line.rstrip().endswith("\\"):
            buffer += line.rstrip()[:-1] + " "
            continue
        lines.append((start, buffer + line))
        buffer = ""
    return lines


def shell_flags(path: Path, found: Found) -> None:
    """The flags a shell script passes, by program."""
    text = path.read_text(encoding="utf-8")
    wrappers = {
        match.group(1): match.group(2)
        for match in re.finditer(r"^\s*([\w-]+)\(\)\s*\{\s*([\w-]+)", text, re.MULTILINE)
        if match.group(2) in SHELL_PROGRAMS
    }
    arrays = {
        match.group(1): re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", match.group(2))
        for match in re.finditer(r"(\w+)=\(([^)]*)\)", text)
    }
    for number, line in _logical_lines(text):
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        current = None
        for word in words:
            # A command substitution's command: `v=$(program --flag …)`.
            bare = word.rsplit("$(", 1)[-1] if "$(" in word else word
            # `;` ends a command, and so does the `)` that closes its substitution.
            bare = bare.rstrip(";)")
            if bare in SHELL_SEPARATORS or (word.endswith((";", ")")) and current and bare != word):
                current = None if bare in SHELL_SEPARATORS else current
            if bare in SHELL_PROGRAMS or bare in wrappers:
                current = wrappers.get(bare, bare)
                continue
            if current is None:
                continue
            where = f"{_shown(path)}:{number}"
            expanded = re.fullmatch(r"\$\{(\w+)\[@\]\}", bare)
            if expanded:
                for flag in arrays.get(expanded.group(1), []):
                    found[current].setdefault(flag, []).append(where)
            elif re.match(r"^--?[A-Za-z]", bare):
                found[current].setdefault(bare.split("=", 1)[0], []).append(where)
            if word.endswith((";", ")")):
                current = None


def used_flags() -> tuple[Found, list[str]]:
    found: Found = defaultdict(dict)
    unattributed: list[str] = []
    for path in sorted(SOURCE.rglob("*.py")):
        python_flags(path, found, unattributed)
    for path in SCRIPTS:
        shell_flags(path, found)
    return found, unattributed


def documented_flags(text: str) -> dict[str, set[str]]:
    """Per "## `program`" section: the flags in backquotes in the tables' first column."""
    documented: dict[str, set[str]] = {}
    program = None
    for line in text.splitlines():
        heading = re.match(r"^## `([^`]+)`", line)
        if heading:
            program = heading.group(1)
            documented.setdefault(program, set())
        elif program and line.startswith("|") and not line.startswith("|---"):
            first = line.split("|")[1]
            for span in re.findall(r"`([^`]+)`", first):
                documented[program] |= set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", span))
    return documented


def test_every_flag_the_code_passes_is_in_docs_tools_checked() -> None:
    found, unattributed = used_flags()
    assert unattributed == [], "flags that belong to no program (add to MODULE_PROGRAMS)"
    documented = documented_flags(DOC.read_text(encoding="utf-8"))
    missing = [
        f"{program} {flag} ({', '.join(places)})"
        for program, flags in sorted(found.items())
        if program != OWN_CLI
        for flag, places in sorted(flags.items())
        if flag not in documented.get(program, set())
    ]
    assert missing == [], "not in docs/tools-checked.md:\n" + "\n".join(missing)


def test_the_scan_finds_the_flags_of_each_kind_of_call() -> None:
    """The scan sees what the code passes: a sample of each form it must recognise."""
    found, _ = used_flags()
    expected = {
        "systemd-run": {"--machine", "--wait", "--pipe", "--quiet", "--collect", "--user"},
        "systemctl": {"--user", "--machine", "--no-ask-password", "--property", "--no-block"},
        "podman": {"--format", "--force", "--ignore", "--label", "--follow", "--since", "-i"},
        "git": {"-C", "-c", "--git-dir", "--porcelain", "--glob", "--file"},
        "op": {"--no-newline"},
        "tailscale": {"--json", "--peers", "--socket", "--auth-key", "--advertise-tags"},
        "tailscaled": {"--tun", "--statedir", "--socket"},
        "code-server": {"--bind-addr", "--auth", "--disable-telemetry"},
        "syncthing": {"--home", "--gui-user", "--gui-password"},
        "curl": {"-fsS", "-H", "-X", "--data"},
    }
    for program, flags in expected.items():
        assert flags <= set(found[program]), (program, flags - set(found[program]))


@pytest.mark.parametrize(
    ("source", "program", "flag"),
    [
        ('process.run(["podman", "volume", "create", "--bogus", name])\n', "podman", "--bogus"),
        ('argv = ["systemd-run", "--user", f"--unit={name}", podman]\n', "systemd-run", "--unit"),
        ('self.run("image", "prune", "--external")\n', "podman", "--external"),
    ],
)
def test_a_flag_added_to_the_code_and_not_to_the_doc_fails(
    tmp_path: Path, source: str, program: str, flag: str
) -> None:
    module = tmp_path / "podman.py"
    module.write_text(source)
    found: Found = defaultdict(dict)
    python_flags(module, found, [])
    documented = documented_flags(DOC.read_text(encoding="utf-8"))
    assert flag in found[program]
    assert flag not in documented[program]


def test_a_shell_flag_added_and_not_documented_fails(tmp_path: Path) -> None:
    script = tmp_path / "entrypoint.sh"
    script.write_text(
        'ts() { tailscale --socket="$s" "$@"; }\n'
        "flags=(--ssh --shields-up)\n"
        'ts set "${flags[@]}" --exit-node=x || die 4 "no"\n'
        "syncthing generate --home=x \\\n\t--no-default-folder >/dev/null\n"
    )
    found: Found = defaultdict(dict)
    shell_flags(script, found)
    documented = documented_flags(DOC.read_text(encoding="utf-8"))
    assert {"--socket", "--ssh", "--shields-up", "--exit-node"} <= set(found["tailscale"])
    assert "--no-default-folder" in found["syncthing"]
    assert "--shields-up" not in documented["tailscale"]
    assert "--no-default-folder" not in documented["syncthing"]
