"""Writing a prediction: the probability (a COG) and the 0/1 mask with the mask rules' vetoes, in column chunks,
on a background thread so the network never waits for the disk."""
from __future__ import annotations

from contextlib import ExitStack

import numpy as np
from rasterio.windows import Window

from .. import raster
from ..postprocess import open_mask_rules
from .blender import blended

MASK_NODATA = 255
WRITE_CHUNK = 2048  # columns written at once: keeps write buffers small on very wide rasters


class MapWriter:
    """Writes finished rows of a tile grid's window to the probability and (optional) mask rasters."""

    def __init__(self, stack: ExitStack, src, grid, out_probability, out_mask, *, threshold: float, model: str,
                 mask_rules=None, cog: bool = True, rows: tuple[int, int] | None = None):
        """`rows`: the output rows [first, end) of `grid.window` these files hold (default: all of them)."""
        self.threshold = threshold
        self.window = grid.window
        self.first, end = rows or (0, grid.height)
        width, height = grid.width, end - self.first
        transform = src.window_transform(Window(self.window.col_off, self.window.row_off + self.first, width,
                                                height))
        self.probability = stack.enter_context(raster.create_raster(
            out_probability, width=width, height=height, crs=src.crs, transform=transform, dtype="float32",
            descriptions=["landslide_probability"], nodata=np.nan, cog=cog,
            tags={"LANDSLIDE_MAPPER": "probability", "MODEL": model}))
        self.mask = stack.enter_context(raster.create_raster(
            out_mask, width=width, height=height, crs=src.crs, transform=transform, dtype="uint8",
            descriptions=["landslide"], nodata=MASK_NODATA,
            tags={"LANDSLIDE_MAPPER": "mask", "THRESHOLD": threshold})) if out_mask else None
        self.allowed = stack.enter_context(open_mask_rules(mask_rules, src)) if out_mask else None

    def write_rows(self, acc: np.ndarray, wsum: np.ndarray, valid: np.ndarray, top: int) -> None:
        """Rows starting at output row `top` of the grid's window → probability and mask, chunk by chunk."""
        width = acc.shape[1]
        for c in range(0, width, WRITE_CHUNK):
            cw = min(WRITE_CHUNK, width - c)
            out = blended(acc[:, c:c + cw], wsum[:, c:c + cw], valid[:, c:c + cw])
            out_win = Window(c, top - self.first, cw, out.shape[0])
            self.probability.write(out[None], window=out_win)
            if self.mask is not None:
                mask = np.where(np.isfinite(out), out >= self.threshold, MASK_NODATA).astype(np.uint8)
                if self.allowed is not None:
                    veto = Window(self.window.col_off + c, self.window.row_off + top, cw, out.shape[0])
                    mask[(mask == 1) & ~self.allowed(veto)] = 0
                self.mask.write(mask[None], window=out_win)


CLASS_NODATA = 255
CLASS_TABLE_TAG = "LANDSLIDE_MAPPER_CLASSES"  # as core.metrics.class_evaluation reads it


class ClassMapWriter:
    """Writes finished rows of a multi-class prediction: per-class probability bands (a COG, one band per class of
    the package) and the class map (uint8 class values of the most probable class, colour table of the package's
    colours, 255 = nodata). Mask rules veto classes other than the first (background) back to the first; with
    `veto_classes` (class values) only those classes."""

    def __init__(self, stack: ExitStack, src, grid, out_probability, out_class_map, *, classes, model: str,
                 mask_rules=None, cog: bool = True, rows: tuple[int, int] | None = None, veto_classes=None):
        import json

        self.classes = [dict(c) for c in classes]
        self.channels = len(self.classes)
        self.values = np.array([int(c["value"]) for c in self.classes], dtype=np.uint8)
        vetoed = set(self.values[1:].tolist()) if veto_classes is None else {int(v) for v in veto_classes}
        self.vetoed = np.array(sorted(vetoed - {int(self.values[0])}), dtype=np.uint8)
        self.window = grid.window
        self.first, end = rows or (0, grid.height)
        width, height = grid.width, end - self.first
        transform = src.window_transform(Window(self.window.col_off, self.window.row_off + self.first, width,
                                                height))
        table = json.dumps([{k: c[k] for k in ("value", "name", "color") if k in c} for c in self.classes])
        self.probability = stack.enter_context(raster.create_raster(
            out_probability, width=width, height=height, crs=src.crs, transform=transform, dtype="float32",
            descriptions=[f"probability_{c['name']}" for c in self.classes], nodata=np.nan, cog=cog,
            tags={"LANDSLIDE_MAPPER": "class probability", "MODEL": model, CLASS_TABLE_TAG: table}))
        self.class_map = stack.enter_context(raster.create_raster(
            out_class_map, width=width, height=height, crs=src.crs, transform=transform, dtype="uint8",
            descriptions=["class"], nodata=CLASS_NODATA,
            tags={"LANDSLIDE_MAPPER": "class map", "MODEL": model, CLASS_TABLE_TAG: table})) \
            if out_class_map else None
        if self.class_map is not None:
            self.class_map.write_colormap(1, raster.colour_table(self.classes))
        self.allowed = stack.enter_context(open_mask_rules(mask_rules, src)) if out_class_map else None

    def write_rows(self, acc: np.ndarray, wsum: np.ndarray, valid: np.ndarray, top: int) -> None:
        """Rows (acc: rows, channels, width) starting at output row `top` → probability bands and class map."""
        width = acc.shape[2]
        for c in range(0, width, WRITE_CHUNK):
            cw = min(WRITE_CHUNK, width - c)
            w = wsum[:, None, c:c + cw]
            ok = valid[:, None, c:c + cw]
            with np.errstate(invalid="ignore", divide="ignore"):
                probs = np.where(ok, acc[:, :, c:c + cw] / w, np.nan).astype(np.float32)  # (rows, K, cw)
            out_win = Window(c, top - self.first, cw, probs.shape[0])
            self.probability.write(probs.transpose(1, 0, 2), window=out_win)
            if self.class_map is not None:
                finite = valid[:, c:c + cw]
                best = np.argmax(np.nan_to_num(probs, nan=-1.0), axis=1)
                classes = np.where(finite, self.values[best], CLASS_NODATA).astype(np.uint8)
                if self.allowed is not None:
                    veto = Window(self.window.col_off + c, self.window.row_off + top, cw, probs.shape[0])
                    classes[np.isin(classes, self.vetoed) & ~self.allowed(veto)] = self.values[0]
                self.class_map.write(classes[None], window=out_win)
