"""Build landslide_mapper.zip for the QGIS plugin manager ("Install from ZIP").

The archive holds one top folder, `landslide_mapper/`, with the plugin files only: metadata.txt, __init__.py,
README.md, LICENSE and the packages common, core, models, plugin, processing_provider and ui. Tests, scripts, the venv,
build folders and caches stay out. Files are taken from git (tracked plus untracked-but-not-ignored) when this is
a git checkout, else from the file system, so it works the same on a clean clone and in a working tree.

    /usr/bin/python3 scripts/build_zip.py --out landslide_mapper.zip      # or: make zip
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from pathlib import Path

PLUGIN = "landslide_mapper"
ROOT = Path(__file__).resolve().parent.parent
TOP_FILES = ("metadata.txt", "__init__.py", "README.md", "LICENSE", "LICENSE.md", "LICENSE.txt")
PACKAGES = ("common", "core", "models", "plugin", "processing_provider", "ui")
EXCLUDED_PARTS = {"__pycache__", ".pytest_cache", ".ipynb_checkpoints"}
EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".tmp.tif", ".aux.xml", "~")


def _candidates(root: Path) -> list[str]:
    """Relative paths of the files in the checkout (git's view when available)."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            check=True, capture_output=True,
        ).stdout.decode().split("\0")
        return [p for p in listed if p]
    except (OSError, subprocess.CalledProcessError):
        return [p.relative_to(root).as_posix() for p in root.rglob("*")
                if p.is_file() and not p.relative_to(root).parts[0].startswith(".")]


def plugin_files(root: Path = ROOT) -> list[str]:
    """Sorted relative paths of the files that belong in the plugin archive."""
    selected = set()
    for rel in _candidates(root):
        parts = rel.split("/")
        if not (root / rel).is_file():  # deleted from the working tree but still in git's index
            continue
        if EXCLUDED_PARTS.intersection(parts) or rel.endswith(EXCLUDED_SUFFIXES):
            continue
        if (len(parts) == 1 and rel in TOP_FILES) or (len(parts) > 1 and parts[0] in PACKAGES):
            selected.add(rel)
    missing = [f for f in ("metadata.txt", "__init__.py") if f not in selected]
    if missing:
        raise FileNotFoundError(f"{root} has no {', '.join(missing)}: not a plugin checkout")
    return sorted(selected)


def build_zip(out: Path, root: Path = ROOT) -> Path:
    """Write the archive to `out` (via a temp file, then renamed) and return its path."""
    out = Path(out).resolve()
    tmp = out.with_name(out.name + ".part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for rel in plugin_files(root):
            archive.write(root / rel, f"{PLUGIN}/{rel}")
    tmp.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build the QGIS plugin ZIP of Landslide Mapper.")
    parser.add_argument("--out", type=Path, default=ROOT / f"{PLUGIN}.zip")
    args = parser.parse_args(argv)
    path = build_zip(args.out)
    with zipfile.ZipFile(path) as archive:
        print(f"{path}: {len(archive.namelist())} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
