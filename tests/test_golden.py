"""Golden tests: one folder per behaviour, inputs beside the expected output.

tests/golden/<case>/ holds users.nix and containers.json, and expected/ holds either the
generated tree (expected/generated/) or, for inputs that must be refused, the exact error
output (expected/stderr.txt; the exit code must be 2 and nothing may be written). The
examples under examples/ are cases too: their committed generated/ tree is the expectation.

`pytest --update-golden` rewrites the expectations from the current generator; review the
diff before committing it.
"""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest

from devbox.declare import generated_tree
from support import REPO, run_cli

GOLDEN = REPO / "tests" / "golden"
CASES = sorted(p for p in GOLDEN.iterdir() if p.is_dir())
EXAMPLES = sorted(p for p in (REPO / "examples").iterdir() if (p / "users.nix").is_file())


def tree_diff(expected: dict[str, bytes], actual: dict[str, bytes]) -> str:
    lines = []
    for path in sorted(expected.keys() | actual.keys()):
        old = expected.get(path, b"").decode().splitlines(keepends=True)
        new = actual.get(path, b"").decode().splitlines(keepends=True)
        lines += difflib.unified_diff(old, new, f"expected/{path}", f"actual/{path}")
    return "".join(lines)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_golden_case(case: Path, tmp_path: Path, nix: str, request: pytest.FixtureRequest) -> None:
    update = request.config.getoption("--update-golden")
    out = tmp_path / "generated"
    result = run_cli("generate", "--out", str(out), cwd=case)
    expected = case / "expected"
    if update:
        shutil.rmtree(expected, ignore_errors=True)
        expected.mkdir()
        if result.code == 0:
            shutil.copytree(out, expected / "generated")
        else:
            (expected / "stderr.txt").write_text(result.err)
    if (expected / "stderr.txt").is_file():
        assert result.code == 2, result.err
        assert result.err == (expected / "stderr.txt").read_text()
        assert not out.exists(), "a refused input must not write anything"
        assert "Traceback" not in result.err
    else:
        assert result.code == 0, result.err
        want, got = generated_tree.read_tree(expected / "generated"), generated_tree.read_tree(out)
        assert want == got, tree_diff(want, got)


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
def test_example_is_generated(
    example: Path, tmp_path: Path, nix: str, request: pytest.FixtureRequest
) -> None:
    """The committed generated tree of each example is what the generator writes."""
    if request.config.getoption("--update-golden"):
        assert run_cli("generate", "-q", cwd=example).code == 0
    out = tmp_path / "generated"
    result = run_cli("generate", "--out", str(out), cwd=example)
    assert result.code == 0, result.err
    want, got = generated_tree.read_tree(example / "generated"), generated_tree.read_tree(out)
    assert want == got, tree_diff(want, got)
    assert run_cli("check", cwd=example).code == 0
