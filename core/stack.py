"""Pre/post change stacks: the band naming catalogue, the study presets, and windowed stack building.

A stack band is named by the catalogue (`pre_VV`, `post_B04`, `dNDVI`, `slope`) and computed from input rasters whose
bands carry catalogue descriptions (or, for single-band files without one, whose file name names the band: `B2.tif`,
`slope.tif`, `dsm.tif`). Inputs on other grids are reprojected onto the reference grid (the first pre-event raster, or
a chosen reference raster, optionally at another resolution) window by window.
"""
from __future__ import annotations

import os
import re
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from rasterio.warp import Resampling

from . import raster
from ..common.errors import InputError
from ..common.progress import Progress, check_canceled, or_null

S2_BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]
S1_BANDS = ["VV", "VH"]
TERRAIN_BANDS = ["elevation", "slope", "aspect", "hillshade", "TPI", "roughness",
                 # the geological-mapping thesis (bedrock, wetlands, ravines); relative_relief_<N> for other N
                 "relative_relief_12", "tpi_3", "tpi_9", "slope_sum", "valley_depth"]
_RELIEF = re.compile(r"^relative_relief_([1-9][0-9]*)$")


def relief_band(pixels: int) -> str:
    """Catalogue name of the relative relief within `pixels` pixels (`relative_relief_12` in the thesis)."""
    return f"relative_relief_{int(pixels)}"


# What each catalogue name means, for help texts and the model card.
CATALOGUE = {
    **{b: f"Sentinel-2 band {b} reflectance" for b in S2_BANDS},
    "SCL": "Sentinel-2 scene classification",
    "NDVI": "Normalised difference vegetation index (B08−B04)/(B08+B04)",
    "VV": "Sentinel-1 VV backscatter (dB)",
    "VH": "Sentinel-1 VH backscatter (dB)",
    "dNDVI": "NDVI change, post − pre (vegetation loss is negative)",
    "dVV": "VV backscatter change, post − pre (dB)",
    "dVH": "VH backscatter change, post − pre (dB)",
    "elevation": "Elevation (m)",
    "slope": "Slope (degrees)",
    "aspect": "Aspect (degrees from north)",
    "hillshade": "Hillshade",
    "TPI": "Topographic position index (m)",
    "roughness": "Terrain roughness (m)",
    "relative_relief_12": "Relative relief: highest minus lowest elevation within 12 pixels (m)",
    "tpi_3": "Topographic position index within 3 pixels: elevation minus the mean of its neighbours (m)",
    "tpi_9": "Topographic position index within 9 pixels: elevation minus the mean of its neighbours (m)",
    "slope_sum": "Slope sum: sum of the slopes within 12 pixels (degrees)",
    "valley_depth": "Valley depth: interpolated ridge level minus elevation (m; SAGA's definition, approximated)",
}

PRESETS: dict[str, list[str]] = {
    "setting1": [f"post_{b}" for b in S2_BANDS],
    "setting2": ["pre_VV", "post_VV", "dNDVI"],
    "setting3": ["pre_VV", "post_VV"],
    "setting4": ["post_B02", "post_B03", "post_B04", "post_B08", "dNDVI"],
    "s1_all": ["pre_VV", "post_VV", "dVV", "pre_VH", "post_VH", "dVH"],
    "s2": ["post_B02", "post_B03", "post_B04", "post_B08", "dNDVI"],
    # the global study's "all" setting, reduced to the bands this plugin can make (no layover/shadow/climate/...)
    "all": ["pre_VV", "post_VV", "dVV", "pre_VH", "post_VH", "dVH", "elevation", "slope", "dNDVI"],
    # not change stacks: the thesis's terrain bands (bedrock, ravines), and one optical image (post_) + terrain
    "terrain": ["elevation", "slope", "relative_relief_12", "tpi_3", "tpi_9", "valley_depth"],
    "s2_terrain": ["post_B02", "post_B03", "post_B04", "post_B08", "post_NDVI",
                   "elevation", "slope", "relative_relief_12", "tpi_3", "tpi_9", "valley_depth"],
}
# Bands whose values are classes or angles: resampled by nearest neighbour, never averaged (350° and 10° ≠ 180°).
NEAREST_BANDS = {"SCL", "aspect"}

_EXACT = {n.lower(): n for n in S2_BANDS + S1_BANDS + TERRAIN_BANDS + ["SCL", "NDVI"]}
_S2_LABEL = re.compile(r"^B(0?[1-9]|1[0-2]|8A)$", re.I)                       # GEE style: B2, B8A
_S1_LABEL = re.compile(r"^(?:(?:sigma|gamma|beta)0_?)?(VV|VH)(?:_?db)?$", re.I)   # SNAP style: Sigma0_VV_db
_S2_TOKEN = re.compile(r"(?<![A-Za-z0-9])B(0?[1-9]|1[0-2]|8A)(?![A-Za-z0-9])", re.I)
_S1_TOKEN = re.compile(r"(?<![A-Za-z0-9])(VV|VH)(?![A-Za-z0-9])", re.I)
_WORD_TOKEN = re.compile(r"(?<![A-Za-z])(slope_sum|valley_depth|tpi_3|tpi_9|"
                         r"SCL|NDVI|slope|aspect|hillshade|TPI|roughness|elevation|DEM|DSM|DTM)"
                         r"(?![A-Za-z])", re.I)


def _s2_name(number: str) -> str:
    return "B8A" if number.upper() == "8A" else f"B{int(number):02d}"


def catalogue_name(label: str, loose: bool = False) -> str | None:
    """The catalogue name a band label stands for (`B2` → `B02`, `Sigma0_VV_db` → `VV`), or None.

    `loose` also finds a band named inside a longer text such as a file name (`s2_B04`, `T33UUP_..._B8A_20m`,
    `iburi_dsm` → `elevation`); band descriptions are matched strictly so `pre_VV` is never taken for `VV`.
    """
    text = label.strip()
    if text.lower() in _EXACT:
        return _EXACT[text.lower()]
    m = _S2_LABEL.match(text) or (_S2_TOKEN.search(text) if loose else None)
    if m:
        return _s2_name(m.group(1))
    m = _S1_LABEL.match(text) or (_S1_TOKEN.search(text) if loose else None)
    if m:
        return m.group(1).upper()
    m = _WORD_TOKEN.search(text) if loose else None
    if m:
        word = m.group(1).lower()
        return "elevation" if word in ("dem", "dsm", "dtm") else _EXACT[word]
    return None


def source_band_names(src, path: str | os.PathLike | None = None, names: Sequence[str] | None = None) -> list[str]:
    """Catalogue names of a raster's bands: `names` if given, else its band descriptions, else (single band) the
    band its file name names; `band<N>` where nothing names a band."""
    if names:
        names = [n.strip() for n in names if n.strip()]
        if len(names) != src.count:
            raise InputError(f"'{path or src.name}' has {src.count} band(s) but {len(names)} band name(s) were "
                             f"given for it ({', '.join(names)}).")
        return [catalogue_name(n) or n for n in names]
    out = []
    for i, d in enumerate(src.descriptions, start=1):
        if d:
            out.append(catalogue_name(d) or d)
        elif src.count == 1:
            out.append(catalogue_name(Path(path or src.name).stem, loose=True) or f"band{i}")
        else:
            out.append(f"band{i}")
    return out


def describe_band(name: str) -> str:
    """Human meaning of a stack band name such as `pre_VV` or `dNDVI`."""
    for prefix, when in (("pre_", "before the event"), ("post_", "after the event")):
        if name.startswith(prefix):
            base = name[len(prefix):]
            return f"{CATALOGUE.get(base, base)}, {when}"
    m = _RELIEF.match(name)
    if m and name not in CATALOGUE:
        return f"Relative relief: highest minus lowest elevation within {m.group(1)} pixels (m)"
    return CATALOGUE.get(name, name)


def resolve_bands(preset_or_bands: str | Sequence[str]) -> list[str]:
    """Band list from a preset name, a comma-separated list, or a list of names."""
    if isinstance(preset_or_bands, str):
        key = preset_or_bands.strip()
        if key in PRESETS:
            return list(PRESETS[key])
        names = [b.strip() for b in key.split(",") if b.strip()]
    else:
        names = [b.strip() for b in preset_or_bands if b.strip()]
    if not names:
        raise InputError(f"No bands given: choose a preset ({', '.join(PRESETS)}) or list band names.")
    for n in names:
        _parse(n)  # validates
    return names


def _parse(name: str) -> tuple[str, str]:
    """Split a stack band name into (kind, base): kind is 'pre', 'post', 'diff' or 'terrain'."""
    if name in TERRAIN_BANDS or _RELIEF.match(name):
        return "terrain", name
    for kind in ("pre", "post"):
        if name.startswith(kind + "_"):
            base = name[len(kind) + 1:]
            if base in S2_BANDS + S1_BANDS + ["NDVI", "SCL"]:
                return kind, base
    if name.startswith("d") and name[1:] in S2_BANDS + S1_BANDS + ["NDVI"]:
        return "diff", name[1:]
    raise InputError(
        f"Unknown stack band '{name}'. Use pre_<band>, post_<band> or d<band> with a Sentinel band "
        f"({', '.join(S1_BANDS)}, B02…B12, NDVI) or a terrain band ({', '.join(TERRAIN_BANDS)})."
    )


@dataclass
class _Source:
    path: str
    dataset: object  # an open rasterio dataset on the reference grid (bilinear)
    names: list[str]
    nearest: object = None  # the same on the reference grid by nearest neighbour, for NEAREST_BANDS


class _BandReader:
    """Finds catalogue bands among the inputs of one epoch and reads them per window, NDVI derived if absent."""

    def __init__(self, sources: list[_Source], epoch: str):
        self.sources, self.epoch = sources, epoch
        self.fills: dict[str, int] = {}  # pixels read as nodata per file: ±Inf, values of 1e30 and more

    def _find(self, base: str):
        for s in self.sources:
            for i, n in enumerate(s.names, start=1):
                if n.lower() == base.lower():
                    return s, i
        return None

    def has(self, base: str) -> bool:
        return self._find(base) is not None or (base == "NDVI" and self.has("B08") and self.has("B04"))

    def files(self, base: str) -> list[str]:
        """The input file(s) band `base` is read from (NDVI derived: those of B08 and B04)."""
        found = self._find(base)
        if found is not None:
            return [found[0].path]
        return list(dict.fromkeys(self.files("B08") + self.files("B04"))) if self.has(base) else []

    def read(self, base: str, window) -> np.ndarray:
        found = self._find(base)
        if found is not None:
            src, idx = found
            view = src.nearest if base in NEAREST_BANDS and src.nearest is not None else src.dataset
            data = raster.read_float(view, idx, window)
            absurd = np.abs(data) >= raster.ABSURD  # fill values, not measurements; NaN compares False
            if absurd.any():
                data[absurd] = np.nan
                self.fills[src.path] = self.fills.get(src.path, 0) + int(np.count_nonzero(absurd))
            return data
        if base == "NDVI" and self.has("B08") and self.has("B04"):
            nir, red = self.read("B08", window), self.read("B04", window)
            with np.errstate(divide="ignore", invalid="ignore"):
                ndvi = (nir - red) / (nir + red)
            return np.where(np.isfinite(ndvi), ndvi, np.nan).astype(np.float32)
        available = sorted({n for s in self.sources for n in s.names})
        files = ", ".join(os.path.basename(s.path) for s in self.sources) or "none given"
        raise InputError(
            f"Band '{base}' is needed from the {self.epoch} rasters ({files}) but none of them has it; "
            f"bands found: {', '.join(available) or 'none'}."
        )


def build_change_stack(
    pre: Sequence[str | os.PathLike],
    post: Sequence[str | os.PathLike],
    out_path: str | os.PathLike,
    bands: str | Sequence[str] = "setting2",
    terrain: Sequence[str | os.PathLike] = (),
    extent: Sequence[float] | None = None,
    block: int = raster.DEFAULT_BLOCK,
    progress: Progress | None = None,
    reference: str | os.PathLike | None = None,
    resolution: float | None = None,
) -> Path:
    """Write a Float32 stack of catalogue bands (nodata NaN) on the grid of `reference` (default: the first
    pre-event raster), resampled to `resolution` (reference CRS units) if given.

    `extent` (xmin, ymin, xmax, ymax in the reference CRS) crops the output to a sub-window of that grid.
    Every other input is reprojected onto that grid (bilinear; nearest for classes and aspect), never relabelled.
    """
    progress = or_null(progress)
    names = resolve_bands(bands)
    if not pre:
        raise InputError("At least one pre-event raster is needed (it defines the output grid).")
    needs_post = any(_parse(n)[0] in ("post", "diff") for n in names)
    if needs_post and not post:
        raise InputError(f"Bands {', '.join(names)} need post-event rasters, but none were given.")
    with ExitStack() as stack:
        reference_path = reference if reference is not None else pre[0]
        reference_ds = stack.enter_context(raster.open_raster(reference_path))
        if reference_ds.crs is None:
            raise InputError(f"Raster '{reference_path}' has no CRS; the output grid needs one.")
        grid = raster.Grid.of(reference_ds)
        if resolution is not None:
            raster.check_resolution(resolution, raster.area_bounds(grid, extent))
            grid = grid.with_resolution(resolution)
            progress.log(f"Output grid: {grid.width}×{grid.height} px of {resolution:g} CRS units "
                         f"over '{reference_path}'")
        window = raster.window_from_extent(grid, extent)

        readers = {"pre": _BandReader(_open_all(stack, pre, grid), "pre-event"),
                   "post": _BandReader(_open_all(stack, post, grid), "post-event"),
                   "terrain": _BandReader(_open_all(stack, terrain, grid), "terrain")}
        # Fail before writing anything if a band cannot be found.
        for n in names:
            kind, base = _parse(n)
            for k in (("pre", "post") if kind == "diff" else (kind,)):
                if not readers[k].has(base):
                    readers[k].read(base, None)  # raises the explanatory InputError
        transform = grid.window_transform(window)
        width, height = int(window.width), int(window.height)
        n_windows = raster.count_windows(width, height, block)
        with raster.create_raster(out_path, width=width, height=height, crs=grid.crs, transform=transform,
                                  dtype="float32", descriptions=names, nodata=np.nan,
                                  tags={"LANDSLIDE_MAPPER": "change_stack", "BANDS": ",".join(names)}) as dst:
            band_valid = np.zeros(len(names), np.int64)  # valid pixels per band ...
            n_complete = 0  # ... and pixels valid in every band
            for k, win in enumerate(raster.block_windows(width, height, block)):
                check_canceled(progress)
                src_win = win.__class__(win.col_off + window.col_off, win.row_off + window.row_off,
                                        win.width, win.height)
                out = _stack_window(names, readers, src_win)
                finite = np.isfinite(out)
                band_valid += np.count_nonzero(finite, axis=(1, 2))
                n_complete += int(np.count_nonzero(np.all(finite, axis=0)))
                dst.write(out, window=win)
                progress.set_progress(100.0 * (k + 1) / n_windows)
            if n_complete == 0:  # refused inside the output's block: no file is left
                _refuse_empty_stack(names, band_valid, readers, reference_path, extent)
    for kind, reader in readers.items():
        for path, count in reader.fills.items():
            progress.log(f"Warning: '{path}' ({PARAMETERS[kind]}) holds ±Inf or values of 1e30 and more ({count} "
                         f"values read; fill values the file does not declare as nodata?); those pixels were taken "
                         f"as nodata.")
    progress.log(f"Change stack written: {out_path} ({width}×{height} px, bands {', '.join(names)})")
    return Path(out_path)


def _open_all(stack: ExitStack, paths, grid) -> list:
    """Each raster opened and aligned on the output grid (a nearest-neighbour view too for class bands)."""
    out = []
    for p in paths:
        ds = stack.enter_context(raster.open_raster(p))
        names = source_band_names(ds, p)
        view = stack.enter_context(raster.aligned(ds, grid))
        nearest = (stack.enter_context(raster.aligned(ds, grid, Resampling.nearest))
                   if NEAREST_BANDS & set(names) and view is not ds else None)
        out.append(_Source(str(p), view, names, nearest))
    return out


def _stack_window(names, readers, src_win) -> np.ndarray:
    """The stack's bands over one window; each source band is read once even when two bands use it."""
    cache: dict[tuple[str, str], np.ndarray] = {}

    def get(kind, base):
        if (kind, base) not in cache:
            cache[(kind, base)] = readers[kind].read(base, src_win)
        return cache[(kind, base)]

    out = np.empty((len(names), int(src_win.height), int(src_win.width)), dtype=np.float32)
    for i, n in enumerate(names):
        kind, base = _parse(n)
        out[i] = get("post", base) - get("pre", base) if kind == "diff" else get(kind, base)
    return out


PARAMETERS = {"pre": "PRE", "post": "POST", "terrain": "TERRAIN"}


def _refuse_empty_stack(names, band_valid, readers, reference_path, extent) -> None:
    """Explain a stack without one pixel valid in every band: which bands are empty and which inputs they need."""
    where = " inside the extent (EXTENT)" if extent is not None else ""
    empty = [n for n, count in zip(names, band_valid) if count == 0]
    if not empty:
        raise InputError(f"No pixel of the stack has a value in every band ({', '.join(names)}){where}: the valid "
                         f"areas of the inputs do not overlap on the grid of '{reference_path}'. Check that the "
                         f"pre-event, post-event and terrain rasters cover the same area, then run again.")
    inputs = []
    for n in empty:
        kind, base = _parse(n)
        for epoch in (("pre", "post") if kind == "diff" else (kind,)):
            inputs += [f"'{f}' ({PARAMETERS[epoch]})" for f in readers[epoch].files(base)]
    raise InputError(f"Band(s) {', '.join(empty)} of the stack would be nodata everywhere{where}: the input(s) "
                     f"{', '.join(dict.fromkeys(inputs))} hold no valid pixel on the grid of '{reference_path}'. "
                     f"Check that they cover that area and are not all nodata (clouds, a wrong nodata value), "
                     f"then run again.")
