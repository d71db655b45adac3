"""How a chip folder is laid out: the native layout and what a chip folder may hold."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.windows import Window

from .. import raster
from .arcgis import ArcGISLayout
from .tile_writer import TileWriter
from ...common.outputs import FolderKind, refuse_unsafe_target
from ..labels import IGNORE, raster_window_bounds


CHIP_FORMAT = "landslide_mapper.chips"


LAYOUTS = ("native", "arcgis")


WRITERS = 2  # threads writing chip files: creating a file is slow kernel work that runs beside the cutting


# What a chip export writes: a folder holding only these may be replaced by a new export.
CHIP_FILES = ("chips.json", "stats.json", "index.csv", "preview.png", "images", "labels", "images/*.tif",
              "labels/*.tif", "images/*.tif.aux.xml", "labels/*.tif.aux.xml")


ARCGIS_FILES = ("map.txt", "stats.txt", "esri_model_definition.emd", "esri_accumulated_stats.json", "images/*.tfw",
                "labels/*.tfw")


def _layout_files(folder: Path) -> tuple[str, ...]:
    """The ArcGIS files, when the earlier export says it used that layout (read with a size cap)."""
    manifest = folder / "chips.json"
    try:
        if manifest.stat().st_size < 16 * 2**20 and json.loads(manifest.read_text()).get("layout") == "arcgis":
            return ARCGIS_FILES
    except (OSError, ValueError, AttributeError):
        pass
    return ()


CHIP_FOLDER = FolderKind("chip export", "chips.json", frozenset(CHIP_FILES), _layout_files)


def prepare_output_folder(folder: Path) -> None:
    refuse_unsafe_target(folder.absolute(), is_dir=True, parameter="OUTPUT_FOLDER", kind=CHIP_FOLDER)


class NativeLayout:
    """Writes chips as images/<id>.tif (Float32, NaN nodata) and labels/<id>.tif (UInt8 class values)."""

    def __init__(self, folder: Path, src, win: Window, names, tile: int, classes):
        self.folder, self.src, self.win, self.tile = folder, src, win, tile
        self.transform = src.transform
        (folder / "images").mkdir()
        (folder / "labels").mkdir()
        px = raster.pixel_size(src)
        self.images = TileWriter(width=tile, height=tile, count=len(names), dtype="float32", crs=src.crs,
                                 pixel_size=px, descriptions=names, nodata=float("nan"))
        self.labels = TileWriter(width=tile, height=tile, count=1, dtype="uint8", crs=src.crs, pixel_size=px,
                                 descriptions=["label"], nodata=IGNORE)

    def chip_id(self, k: int) -> str:
        return f"{k:06d}"

    def origin(self, row: int, col: int) -> tuple[float, float]:
        return self.transform * (self.win.col_off + col, self.win.row_off + row)

    def bounds(self, row: int, col: int) -> tuple[float, float, float, float]:
        t = self.transform * Affine.translation(self.win.col_off + col, self.win.row_off + row)
        return raster_window_bounds(t, self.tile, self.tile)

    def accepts(self, n_valid: int, n_known: int) -> bool:
        return True

    def write_chip(self, k: int, image: np.ndarray, codes: np.ndarray, valid: np.ndarray, origin) -> None:
        cid = self.chip_id(k)
        self.images.write(self.folder / "images" / f"{cid}.tif", image, origin)
        self.labels.write(self.folder / "labels" / f"{cid}.tif", codes[None], origin)

    def finish(self, manifest: dict, band_stats: list[dict], cutter) -> None:
        pass


def write_index(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


# Layout name → its writer class (a chip export writes through one of them).
LAYOUT_WRITERS = {"native": NativeLayout, "arcgis": ArcGISLayout}
