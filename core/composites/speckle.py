"""Speckle filters (linear power in, linear power out; NaN = nodata, ignored in the statistics)."""
from __future__ import annotations


import numpy as np
from scipy import ndimage

from ...common.errors import InputError


SPECKLE_FILTERS = ("none", "boxcar", "lee", "refined_lee")


DEFAULT_ENL = 4.4  # equivalent number of looks of IW GRDH (ESA product specification)


def _local_stats(x: np.ndarray, weights: np.ndarray):
    """Weighted local mean and variance of x over the kernel `weights`, ignoring NaN."""
    valid = np.isfinite(x)
    x0 = np.where(valid, x, 0.0).astype(np.float64)
    n = ndimage.correlate(valid.astype(np.float64), weights, mode="constant")
    s1 = ndimage.correlate(x0, weights, mode="constant")
    s2 = ndimage.correlate(x0 * x0, weights, mode="constant")
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s1 / n
        var = np.maximum(s2 / n - mean * mean, 0.0)
    return mean, var


def boxcar_filter(x: np.ndarray, size: int = 7) -> np.ndarray:
    """Mean over a size×size window (valid pixels only)."""
    mean, _ = _local_stats(x, np.ones((size, size)))
    return np.where(np.isfinite(x), mean, np.nan).astype(np.float32)


def _lee(x, mean, var, enl: float):
    cu2 = 1.0 / enl  # squared coefficient of variation of fully developed speckle
    var_x = np.maximum((var - mean * mean * cu2) / (1.0 + cu2), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        b = np.where(var > 0, var_x / var, 0.0)
    return np.where(np.isfinite(x), mean + b * (x - mean), np.nan).astype(np.float32)


def lee_filter(x: np.ndarray, size: int = 7, enl: float = DEFAULT_ENL) -> np.ndarray:
    """Lee (1980) filter: local mean plus the part of the deviation the speckle model cannot explain."""
    mean, var = _local_stats(x, np.ones((size, size)))
    return _lee(x, mean, var, enl)


def _refined_lee_masks() -> list[tuple[np.ndarray, tuple[int, int]]]:
    """The 8 edge-aligned half windows of 7×7 (with the offset of the 3×3 sub-mean on their side)."""
    i, j = np.mgrid[0:7, 0:7]
    return [
        ((i <= 3), (-2, 0)), ((i >= 3), (2, 0)),           # above / below a horizontal edge
        ((j <= 3), (0, -2)), ((j >= 3), (0, 2)),           # left / right of a vertical edge
        ((j >= i), (-2, 2)), ((j <= i), (2, -2)),          # upper-right / lower-left of a "\" edge
        ((i + j <= 6), (-2, -2)), ((i + j >= 6), (2, 2)),  # upper-left / lower-right of a "/" edge
    ]


def refined_lee_filter(x: np.ndarray, enl: float = DEFAULT_ENL) -> np.ndarray:
    """Refined Lee (Lee 1981) on 7×7: the Lee filter over the half window on the centre's side of the strongest
    edge, found from the 3×3 means of the 7×7 window, so edges and scarps stay sharp."""
    mean3, _ = _local_stats(x, np.ones((3, 3)))
    pad = np.pad(mean3, 2, mode="edge")
    h, w = x.shape

    def sub(di, dj):  # the 3×3 mean centred (di, dj) pixels away
        return pad[2 + di:2 + di + h, 2 + dj:2 + dj + w]

    centre = mean3
    pairs = [((-2, 0), (2, 0)), ((0, -2), (0, 2)), ((-2, 2), (2, -2)), ((-2, -2), (2, 2))]
    gradients = np.stack([np.abs(sub(*a) - sub(*b)) for a, b in pairs])
    edge = np.argmax(np.nan_to_num(gradients, nan=-1.0), axis=0)  # which of the 4 edge orientations
    masks = _refined_lee_masks()
    mean_sel, var_sel = np.full((h, w), np.nan), np.full((h, w), np.nan)
    for e, (a, b) in enumerate(pairs):
        # the half whose 3×3 sub-mean is closer to the centre's is the homogeneous side
        first = np.abs(sub(*a) - centre) <= np.abs(sub(*b) - centre)
        for side, chosen in ((2 * e, first), (2 * e + 1, ~first)):
            sel = (edge == e) & chosen
            if sel.any():
                m, v = _local_stats(x, masks[side][0].astype(np.float64))
                mean_sel[sel], var_sel[sel] = m[sel], v[sel]
    return _lee(x, mean_sel, var_sel, enl)


def speckle_filter(x: np.ndarray, method: str, size: int = 7, enl: float = DEFAULT_ENL) -> np.ndarray:
    if method in (None, "", "none"):
        return x
    if method == "boxcar":
        return boxcar_filter(x, size)
    if method == "lee":
        return lee_filter(x, size, enl)
    if method == "refined_lee":
        return refined_lee_filter(x, enl)
    raise InputError(f"Unknown speckle filter '{method}'; use one of {', '.join(SPECKLE_FILTERS)}.")


def filter_halo(method: str, size: int) -> int:
    return 0 if method in (None, "", "none") else 3 if method == "refined_lee" else size // 2
