"""Reading a package's model.json without PyTorch: what the plugin's model card shows before any network is built.

Only JSON is read (no weights, no code), so this is safe on any file. The full validation, weights included,
happens in `models.package.read_package` when a model runs.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

from ..core.errors import InputError

MANIFEST = "model.json"
CARD_KEYS = ("input_bands", "members", "threshold", "tile_size")  # what a card cannot do without


def read_manifest(path: str | os.PathLike) -> dict:
    """The model.json of a .lmpkg, or an InputError that names the file and what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Model package '{path}' does not exist.")
    if not zipfile.is_zipfile(path):
        raise InputError(f"'{path.name}' is not a Landslide Mapper model package (.lmpkg is a zip file).")
    with zipfile.ZipFile(path) as zf:
        if MANIFEST not in zf.namelist():
            raise InputError(f"Model package '{path.name}' has no {MANIFEST}.")
        try:
            manifest = json.loads(zf.read(MANIFEST))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"{MANIFEST} in '{path.name}' is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise InputError(f"{MANIFEST} in '{path.name}' is not a JSON object.")
    missing = [k for k in CARD_KEYS if k not in manifest]
    if missing:
        raise InputError(f"{MANIFEST} in '{path.name}' lacks {', '.join(missing)}.")
    if not manifest["input_bands"]:
        raise InputError(f"'{path.name}' declares no input bands.")
    return manifest
