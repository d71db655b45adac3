"""The Sentinel-1 composite: median backscatter per orbit direction, optional speckle filter, in dB."""
from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path
from typing import Sequence

import numpy as np
from rasterio.warp import Resampling
from rasterio.windows import Window

from .. import raster
from ...common.errors import InputError
from ...common.progress import Progress, check_canceled, or_null
from .s1_scenes import ORBITS, S1Scene, read_s1_scene
from .shared import COMPOSITE_BLOCK, GridViews, nan_percentile
from .speckle import DEFAULT_ENL, SPECKLE_FILTERS, filter_halo, speckle_filter


def s1_composite(
    inputs: Sequence[str | os.PathLike | S1Scene],
    out_path: str | os.PathLike | None,
    orbit: str = "both",
    per_direction: dict[str, str | os.PathLike] | None = None,
    units: str = "auto",
    speckle: str = "none",
    window: int = 7,
    enl: float = DEFAULT_ENL,
    input_bands: Sequence[str] | None = None,
    crs=None,
    resolution: float | None = None,
    extent: Sequence[float] | None = None,
    extent_crs=None,
    block: int = COMPOSITE_BLOCK,
    progress: Progress | None = None,
) -> dict[str, Path]:
    """Median backscatter of Sentinel-1 GRD scenes, VV and VH in dB (Float32, nodata NaN).

    `orbit` picks the scenes of `out_path` ("both", "ascending", "descending"); `per_direction` maps "ascending"/
    "descending" to extra outputs made in the same pass. The median is taken in linear power (never averaging dB),
    after an optional speckle filter ("boxcar", "lee", "refined_lee"; `window` odd, refined Lee is always 7×7).
    Returns {selection: path}.
    """
    progress = or_null(progress)
    orbit = orbit.lower()
    if orbit not in ORBITS:
        raise InputError(f"Unknown orbit direction '{orbit}'; use one of {', '.join(ORBITS)}.")
    speckle = (speckle or "none").lower().replace(" ", "_")
    if speckle not in SPECKLE_FILTERS:
        raise InputError(f"Unknown speckle filter '{speckle}'; use one of {', '.join(SPECKLE_FILTERS)}.")
    if speckle in ("boxcar", "lee") and (window < 3 or window % 2 == 0):
        raise InputError(f"The speckle filter window must be an odd number of pixels ≥ 3, not {window}.")
    if not inputs:
        raise InputError("Give at least one Sentinel-1 raster.")
    scenes = [s if isinstance(s, S1Scene) else read_s1_scene(s, units, input_bands) for s in inputs]
    outputs = _outputs(out_path, orbit, per_direction)
    selections = {sel: _select(scenes, sel) for sel in outputs}
    used = list(dict.fromkeys(s for sel in selections.values() for s in sel)) if len(selections) > 1 else \
        next(iter(selections.values()))
    for s in used:
        progress.log(f"{s.label}: {', '.join(s.bands)} in {s.units}, {s.orbit or 'orbit unknown'}")
    halo = filter_halo(speckle, window)
    with ExitStack() as stack:
        stack.enter_context(raster.bounded_gdal_cache())
        grid = raster.target_grid(stack.enter_context(raster.open_raster(used[0].path)), crs, resolution, extent,
                                  extent_crs)
        views = GridViews(stack, grid)
        for s in used:
            views.get(s.path, Resampling.bilinear, what=f"Sentinel-1 raster '{s.label}'")
        writers = {}
        for sel, path in outputs.items():
            tags = {"LANDSLIDE_MAPPER": "s1_composite", "ORBIT": sel, "SPECKLE_FILTER": speckle,
                    "SCENES": ";".join(s.label for s in selections[sel]), "UNITS": "dB"}
            writers[sel] = stack.enter_context(raster.create_raster(
                path, width=grid.width, height=grid.height, crs=grid.crs, transform=grid.transform,
                dtype="float32", descriptions=["VV", "VH"], nodata=np.nan, tags=tags))
        n_windows = raster.count_windows(grid.width, grid.height, block)
        for k, win in enumerate(raster.block_windows(grid.width, grid.height, block)):
            check_canceled(progress)
            linear = {(s.path, pol): _read_linear(views, s, pol, win, halo, grid, speckle, window, enl)
                      for s in used for pol in s.bands}
            for sel, dst in writers.items():
                dst.write(_median_db(linear, selections[sel]), window=win)
            progress.set_progress(100.0 * (k + 1) / n_windows)
    for sel, path in outputs.items():
        progress.log(f"S1 median ({sel}, {len(selections[sel])} scene(s), filter {speckle}) written: {path}")
    return outputs


def _outputs(out_path, orbit: str, per_direction) -> dict[str, Path]:
    """{orbit selection: output path} of the composites asked for."""
    outputs: dict[str, Path] = {}
    if out_path:
        outputs[orbit] = Path(out_path)
    for direction, path in (per_direction or {}).items():
        if direction not in ("ascending", "descending"):
            raise InputError(f"Per-direction outputs are 'ascending' or 'descending', not '{direction}'.")
        if path:
            outputs[direction] = Path(path)
    if not outputs:
        raise InputError("No output was asked for.")
    return outputs


def _select(scenes: list[S1Scene], sel: str) -> list[S1Scene]:
    """The scenes of one orbit selection, each polarisation present, or a clear refusal."""
    chosen = [s for s in scenes if sel == "both" or s.orbit == sel]
    unknown = [s.label for s in scenes if s.orbit is None]
    if sel != "both" and unknown:
        raise InputError(f"The orbit direction of {', '.join(unknown)} is unknown (no ORBIT_DIRECTION metadata, "
                         f"no ASC/DESC in the file name), so the {sel} scenes cannot be picked. Rename the files "
                         f"(e.g. ..._ASC.tif) or use orbit 'both'.")
    if not chosen:
        found = ", ".join(f"{s.label}: {s.orbit}" for s in scenes)
        raise InputError(f"None of the Sentinel-1 rasters is {sel} ({found}).")
    for pol in ("VV", "VH"):
        if not any(pol in s.bands for s in chosen):
            raise InputError(f"None of the {sel} Sentinel-1 rasters ({', '.join(s.label for s in chosen)}) has a "
                             f"{pol} band; both polarisations are needed.")
    return chosen


def _median_db(linear: dict, chosen: list[S1Scene]) -> np.ndarray:
    """(2, h, w) median VV and VH in dB of the chosen scenes' linear power (the median never averages dB)."""
    out = []
    for pol in ("VV", "VH"):
        obs = np.stack([linear[(s.path, pol)] for s in chosen if pol in s.bands])
        median = nan_percentile(obs, 50.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            out.append(np.where(median > 0, 10.0 * np.log10(median), np.nan))
    return np.stack(out).astype(np.float32)


def _read_linear(views: GridViews, scene: S1Scene, pol: str, win: Window, halo: int, grid, speckle, size, enl):
    """One polarisation of one scene on a window, in linear power, speckle-filtered with a halo of context."""
    view = views.get(scene.path, Resampling.bilinear)
    if halo:
        col0, row0 = max(0, int(win.col_off) - halo), max(0, int(win.row_off) - halo)
        col1 = min(grid.width, int(win.col_off + win.width) + halo)
        row1 = min(grid.height, int(win.row_off + win.height) + halo)
        data = raster.read_float(view, scene.bands[pol], Window(col0, row0, col1 - col0, row1 - row0))
    else:
        col0, row0 = int(win.col_off), int(win.row_off)
        data = raster.read_float(view, scene.bands[pol], win)
    if scene.units == "dB":
        data = np.power(10.0, data / 10.0, dtype=np.float32)
    data = speckle_filter(data, speckle, size, enl)
    r, c = int(win.row_off) - row0, int(win.col_off) - col0
    return data[r:r + int(win.height), c:c + int(win.width)]
