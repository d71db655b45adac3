"""Boundary F1: how well predicted outlines follow the true ones, within a pixel tolerance."""
from __future__ import annotations

import numpy as np

from .scores import ratio


class BoundaryTally:
    """Boundary precision/recall within a tolerance (the thesis scored ravine lines this way).

    A boundary pixel is an object pixel with a non-object 4-neighbour; one counts as matched when the other map has
    a boundary pixel within `tolerance` pixels (square neighbourhood). Strips are read with a halo of
    tolerance + 1 rows, so results do not depend on where strips are cut.
    """

    def __init__(self, tolerance: int):
        self.tolerance = int(tolerance)
        self.counts = {"truth_boundary": 0, "truth_matched": 0, "mapped_boundary": 0, "mapped_matched": 0}

    @staticmethod
    def boundary(mask: np.ndarray) -> np.ndarray:
        from scipy import ndimage

        # Outside the raster counts as 'object', so the raster edge is no boundary.
        return mask & ~ndimage.binary_erosion(mask, border_value=1)

    def add(self, truth: np.ndarray, mapped: np.ndarray, valid: np.ndarray, core: slice) -> None:
        """Masks of a strip with halo rows; `core` the rows this strip owns."""
        from scipy import ndimage

        inner = ndimage.binary_erosion(valid, border_value=1)  # not next to nodata: no artificial boundaries
        bt, bm = self.boundary(truth) & inner, self.boundary(mapped) & inner
        size = 2 * self.tolerance + 1
        near_t = ndimage.maximum_filter(bt.view(np.uint8), size=size, mode="constant").astype(bool)
        near_m = ndimage.maximum_filter(bm.view(np.uint8), size=size, mode="constant").astype(bool)
        bt, bm, near_t, near_m = bt[core], bm[core], near_t[core], near_m[core]
        self.counts["truth_boundary"] += int(np.count_nonzero(bt))
        self.counts["truth_matched"] += int(np.count_nonzero(bt & near_m))
        self.counts["mapped_boundary"] += int(np.count_nonzero(bm))
        self.counts["mapped_matched"] += int(np.count_nonzero(bm & near_t))

    def result(self, pixel_size: float) -> dict:
        c = self.counts
        precision = ratio(c["mapped_matched"], c["mapped_boundary"])
        recall = ratio(c["truth_matched"], c["truth_boundary"])
        f1 = (2 * precision * recall / (precision + recall)
              if precision is not None and recall is not None and precision + recall > 0 else None)
        return {"tolerance_px": self.tolerance, "tolerance_map_units": self.tolerance * pixel_size,
                "boundary_precision": precision, "boundary_recall": recall, "boundary_f1": f1, **c}
