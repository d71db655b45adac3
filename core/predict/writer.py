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
