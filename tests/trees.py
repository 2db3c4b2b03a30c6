"""Two large generated-like trees, for the tests that kill a writer (imports nothing heavy)."""

from __future__ import annotations


def tree(version: str, size: int = 400) -> dict[str, bytes]:
    """A tree whose two versions differ in content and in which files exist."""
    offset = 0 if version == "a" else size // 3
    files = {
        f"users/{1000 + i % 40}/devbox-c{i}.container": f"{version} {i}\n".encode() * 20
        for i in range(offset, offset + size)
    }
    files["manifest.json"] = f'{{"version": "{version}"}}\n'.encode()
    return files
