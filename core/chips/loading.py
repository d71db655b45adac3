"""Loading a chip folder of either layout (native or ArcGIS Classified Tiles)."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import rasterio

from .. import raster
from ...common.errors import InputError
from .arcgis import read_classified_tiles
from .chipset import ChipSet, binary_manifest, check_task, multiclass_manifest, multiclass_table
from ..labels import CLASSES, classes_from_manifest, landslide_lut, mark_landslide_classes
from .layouts import CHIP_FORMAT


def is_classified_tiles(folder: Path) -> bool:
    """True for an ArcGIS 'Classified Tiles' export (ours or ArcGIS Pro's)."""
    manifest = folder / "chips.json"
    if manifest.exists():
        try:
            return json.loads(manifest.read_text()).get("layout") == "arcgis"
        except (OSError, ValueError):
            return False
    return (folder / "esri_model_definition.emd").exists() or (folder / "map.txt").exists()


def load_chips(folder: str | os.PathLike, landslide_classes=None, max_bytes: int = 4 << 30,
               validation_fraction: float = 0.2, seed: int = 0, task: str = "binary") -> ChipSet:
    """Load a native chip folder or an ArcGIS 'Classified Tiles' folder; labels become 0/1/255.

    `landslide_classes` (values or names, e.g. "2") picks the classes that are landslides, all other classes being
    background; None keeps the export's choice (native) or needs a class named 'landslide' or a single class
    (ArcGIS). Folders without our split get a spatially blocked one (`validation_fraction`, `seed`).
    `task` "multiclass" keeps every class: labels become channel indexes of the class table (background first).
    """
    check_task(task)
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"Chip folder '{folder}' does not exist.")
    if is_classified_tiles(folder):
        return read_classified_tiles(folder, landslide_classes, max_bytes=max_bytes,
                                     validation_fraction=validation_fraction, seed=seed, task=task)
    return _load_native(folder, landslide_classes, max_bytes, task)


def _load_native(folder: Path, landslide_classes, max_bytes: int, task: str = "binary") -> ChipSet:
    manifest_path = folder / "chips.json"
    if not manifest_path.exists():
        raise InputError(f"'{folder}' is not a chip folder: chips.json (or an ArcGIS esri_model_definition.emd) "
                         f"is missing; export chips first.")
    try:
        manifest = json.loads(manifest_path.read_text())
        stats = json.loads((folder / "stats.json").read_text())["bands"]
        with open(folder / "index.csv", newline="") as f:
            index = list(csv.DictReader(f))
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"Chip folder '{folder}' is incomplete or damaged: {exc}") from None
    if manifest.get("format") != CHIP_FORMAT:
        raise InputError(f"'{manifest_path}' is not a Landslide Mapper chip manifest.")
    classes = mark_landslide_classes(classes_from_manifest(manifest.get("classes", CLASSES)), landslide_classes,
                                     f"Chip folder '{folder}'") if landslide_classes is not None else \
        classes_from_manifest(manifest.get("classes", CLASSES))
    lut = landslide_lut(classes)
    if task == "multiclass":
        table, lut = multiclass_table(classes_from_manifest(manifest.get("classes", CLASSES)),
                                      manifest.get("background"))
    n, c, t = len(index), len(manifest["bands"]), int(manifest["tile_size"])
    if n == 0:
        raise InputError(f"Chip folder '{folder}' lists no chips.")
    if n * c * t * t * 4 > max_bytes:
        raise InputError(f"Chip folder '{folder}' holds {n} chips, more than fit in memory for training here.")
    images = np.empty((n, c, t, t), dtype=np.float32)
    labels = np.empty((n, t, t), dtype=np.uint8)
    for i, row in enumerate(index):
        for kind, arr in (("images", images), ("labels", labels)):
            p = folder / kind / f"{row['id']}.tif"
            if not p.exists():
                raise InputError(f"Chip folder '{folder}' lists chip {row['id']} but '{p}' is missing.")
            with raster.reading(p), rasterio.open(p) as src:
                if (src.height, src.width) != (t, t) or (kind == "images" and src.count != c):
                    raise InputError(f"Chip '{p}' is {src.count}×{src.height}×{src.width}, expected "
                                     f"{c if kind == 'images' else 1}×{t}×{t}.")
                if kind == "images":
                    arr[i] = raster.read_float(src, list(range(1, c + 1)))
                else:
                    arr[i] = lut[src.read(1)]
    carried = multiclass_manifest(manifest, table, classes) if task == "multiclass" else \
        binary_manifest(manifest, classes)
    return ChipSet(folder, carried, stats, images, labels, np.array([r["split"] for r in index]))
