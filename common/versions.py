"""Version facts recorded in packages and shown by the Doctor: the plugin's own (from metadata.txt) and Python's."""
from __future__ import annotations

import platform
from pathlib import Path

METADATA = Path(__file__).resolve().parent.parent / "metadata.txt"


def plugin_version() -> str:
    """The `version=` of metadata.txt, or "unknown"."""
    if METADATA.exists():
        for line in METADATA.read_text(encoding="utf-8").splitlines():
            if line.startswith("version="):
                return line.split("=", 1)[1].strip()
    return "unknown"


def python_version() -> str:
    return platform.python_version()
