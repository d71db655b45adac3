"""Spatial splits: blocks or regions assigned to train, validation and test so no pixel is in two splits."""
from __future__ import annotations


import numpy as np
from rasterio.windows import Window

from .. import raster
from ...common.errors import InputError
from ..labels import PolygonSet, layer_fields, read_polygons


SPLITS = ("train", "validation", "test")


def assign_splits(unit_positives: dict, fractions: dict, seed: int) -> dict:
    """Split units (blocks/regions) → split name, stratified so held-out splits get landslide units too."""
    rng = np.random.default_rng(seed)
    held = [(s, f) for s, f in fractions.items() if s != "train" and f > 0]
    splits = {}
    for group in ([u for u, p in unit_positives.items() if p > 0], [u for u, p in unit_positives.items() if p == 0]):
        group = sorted(group)
        rng.shuffle(group)
        k = 0
        for split, fraction in held:
            n = int(round(len(group) * fraction))
            if n == 0 and len(group) > len(held):
                n = 1  # a small group still gives each held-out split one unit
            for u in group[k:k + n]:
                splits[u] = split
            k += n
        for u in group[k:]:
            splits[u] = "train"
    return splits


_SPLIT_NAMES = {"train": "train", "training": "train", "validation": "validation", "valid": "validation",
                "val": "validation", "test": "test", "testing": "test"}


class SplitPlan:
    """Which split each chip belongs to: square blocks of the map, or polygons of regions, as split units.

    A chip is kept only when every pixel of it lies in units of one split, so no pixel is shared between splits.
    """

    def __init__(self, win: Window, block: tuple[int, int] | None = None, regions: PolygonSet | None = None,
                 grid=None):
        self.win, self.block, self.regions, self.grid = win, block, regions, grid
        self.unit_split: dict[int, str] = {}
        self.fixed = regions is not None and any(v is not None for v in regions.values)

    def units(self, window: Window) -> np.ndarray | None:
        """Region number (1-based; 0 = none) per pixel of an absolute window; None for blocks (arithmetic)."""
        if self.regions is None:
            return None
        ids = list(range(1, len(self.regions.shapes) + 1))
        return self.regions.burn(self.grid, window, values=ids, dtype="int32")

    def block_of(self, row: int, col: int) -> int:
        bh, bw = self.block
        return (row // bh) * (int(self.win.width) // bw + 1) + col // bw

    def chip_split(self, row: int, col: int, size: int, units: np.ndarray | None = None) -> str | None:
        """Split of the chip at window-relative (row, col); `units` = region numbers of the chip's pixels."""
        if self.regions is None:
            bh, bw = self.block
            names = {self.unit_split.get(self.block_of(r * bh, c * bw))
                     for r in range(row // bh, (row + size - 1) // bh + 1)
                     for c in range(col // bw, (col + size - 1) // bw + 1)}
        else:
            lo, hi = int(units.min()), int(units.max())
            if lo == 0:
                return None  # partly outside every region
            names = {self.unit_split.get(u) for u in ((lo,) if lo == hi else np.unique(units))}
        return names.pop() if len(names) == 1 else None

    def assign(self, unit_positives: dict, fractions: dict, seed: int) -> None:
        if self.fixed:
            for k, value in enumerate(self.regions.values, start=1):
                name = _SPLIT_NAMES.get(str(value).strip().lower()) if value is not None else None
                if name is None:
                    raise InputError(f"Split region {k} of '{self.regions.path}' has split '{value}'; use train, "
                                     f"validation or test.")
                self.unit_split[k] = name
        else:
            self.unit_split = assign_splits(unit_positives, fractions, seed)


def split_plan(src, win, tile_size, split_block, split_block_size, regions_path, regions_layer,
                split_field) -> SplitPlan:
    if regions_path:
        polys = read_polygons(str(regions_path), src.crs, layer=regions_layer,
                              what="Split-region layer (SPLIT_REGIONS)")
        fields = layer_fields(str(regions_path), regions_layer)
        if split_field and split_field in fields:
            polys = read_polygons(str(regions_path), src.crs, layer=regions_layer, field=split_field,
                                  what="Split-region layer (SPLIT_REGIONS)")
        if not len(polys.select(src.window_bounds(win))):
            raise InputError(f"Split-region layer '{regions_path}' does not overlap the raster area being cut.")
        return SplitPlan(win, regions=polys, grid=src)
    if split_block and split_block_size:
        raise InputError("Give the split block size in pixels or in map units, not both.")
    if split_block_size:
        px, py = raster.pixel_size(src)
        block = (max(1, int(round(split_block_size / py))), max(1, int(round(split_block_size / px))))
    else:
        block = (int(split_block or tile_size * 4),) * 2
    if min(block) < 1:
        raise InputError(f"Split blocks must be at least one pixel (got {block}).")
    return SplitPlan(win, block=block, grid=src)
