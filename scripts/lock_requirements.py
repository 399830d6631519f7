"""Write requirements.txt: the exact package set of the working virtual environment.

`make lock` runs this after a deliberate upgrade (pip install -U ... in .venv, tests pass).
`make test` / `make book` install from the file, so a fresh clone gets the tested stack.
CUDA runtime wheels (nvidia-*, cuda-*, triton) exist only for Linux: they get a platform
marker so the same file still installs torch's own wheels on macOS / Windows.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

LINUX_ONLY_PREFIXES = ("nvidia-", "cuda-", "triton")
# pip itself is not pinned (the venv's pip installs the file); the package is installed editable.
SKIP = ("pip==",)

HEADER = """\
# Exact package set of the tested environment (Python {py}), written by scripts/lock_requirements.py
# from `pip freeze` of the project's .venv. Regenerate with `make lock` after a deliberate upgrade;
# the direct dependencies and their pins also stand in pyproject.toml and environment.yml.
"""


def main() -> int:
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--all", "--exclude-editable"],
                            check=True, capture_output=True, text=True).stdout.splitlines()
    lines = []
    for line in sorted(frozen, key=str.lower):
        if not line or line.startswith("#") or line.startswith(SKIP):
            continue
        if line.startswith("-e ") or " @ " in line:
            continue  # the project itself (editable) or a local build: not a registry pin
        if line.lower().startswith(LINUX_ONLY_PREFIXES):
            line += ' ; sys_platform == "linux"'
        lines.append(line)
    py = ".".join(map(str, sys.version_info[:3]))
    Path("requirements.txt").write_text(HEADER.format(py=py) + "\n".join(lines) + "\n")
    print(f"requirements.txt: {len(lines)} pinned packages")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
