"""Terrain derivatives of a DEM: slope, aspect, hillshade, TPI, roughness, computed window by window.

Gradients need metres on both axes. In a projected CRS a pixel is its size times the CRS's unit (metre, US foot);
in a geographic CRS (EPSG:4326 DEMs such as the 30 m AW3D/SRTM DSMs) a pixel of Δλ × Δφ degrees is
N(φ)·cos φ·Δλ by M(φ)·Δφ metres on the CRS's ellipsoid, computed per row, so slopes are right at any latitude
(GDAL's constant `-s 111120` overstates east–west gradients by 1/cos φ).

The geological-mapping thesis adds neighbourhood bands: relative relief within N pixels, TPI within 3 and 9 pixels,
the slope sum within 12 pixels and valley depth. Their neighbourhoods are discs of N times the DEM's north–south pixel
size in metres (N pixels on a projected DEM with square pixels; round on the ground, an ellipse of pixels, on a DEM
in degrees), fixed for the whole raster from its centre row so every window computes exactly what one whole-array
pass would. Each block is read with a halo as wide as the widest neighbourhood it needs, so memory stays bounded.

Valley depth approximates SAGA's Valley Depth (ta_channels 7: ridge cells from Strahler order on the inverted DEM, a
ridge level interpolated between them over the whole grid, minus the elevation), which needs the whole DEM at once.
Here the ridge level is the DEM's morphological closing by a flat disc of `valley_depth_radius` metres (the highest
level up to which the disc cannot enter a valley; beyond 15 pixels of radius the disc is 16 nested rectangles
inscribed in it, so the cost does not grow with the radius): within any valley narrower than the disc's diameter it
is the level of the lower bounding crest, so the depth is exact there for valleys between crests of equal height,
never negative, and 0 on ridges, convex slopes and planes; wider valleys are measured only down to where they are as
wide as the disc (a depth of at most slope × radius).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from osgeo import osr
from rasterio.windows import Window
from scipy import ndimage
from scipy.signal import fftconvolve

from . import raster
from ..common.errors import InputError
from ..common.progress import Progress, check_canceled, or_null
from .stack import TERRAIN_BANDS, relief_band

FLAT_ASPECT = -1.0  # aspect of flat ground (no downslope direction), as ArcGIS writes it
TPI_PIXELS = (3, 9)          # the thesis's TPI3 and TPI9 (bands tpi_3, tpi_9)
SLOPE_SUM_PIXELS = 12        # the thesis's slope sum neighbourhood
RELIEF_PIXELS = 12           # the thesis's relative relief neighbourhood (band relative_relief_12)
VALLEY_DEPTH_RADIUS = 200.0  # metres: valleys up to 400 m wide are measured from crest to floor
MAX_NEIGHBOURHOOD_PIXELS = 1000  # radius of the widest neighbourhood (pixels): each window is read with it around


def pixel_metres(crs, transform, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """East–west and north–south size in metres of the pixels in `rows` (arrays, one value per row)."""
    rows = np.asarray(rows, dtype=np.float64)
    if crs is None:
        raise InputError("The DEM has no CRS, so its pixel size in metres is unknown; assign its CRS first.")
    if transform.b != 0 or transform.d != 0:
        raise InputError("The DEM grid is rotated; warp it to a north-up grid first.")
    if crs.is_geographic:
        srs = osr.SpatialReference()
        srs.ImportFromWkt(crs.to_wkt())
        a, inv_f = srs.GetSemiMajor(), srs.GetInvFlattening()
        e2 = 0.0 if inv_f == 0 else (2.0 - 1.0 / inv_f) / inv_f
        lat = np.radians(transform.f + transform.e * (rows + 0.5))
        w = 1.0 - e2 * np.sin(lat) ** 2
        n = a / np.sqrt(w)                    # prime-vertical radius of curvature
        m = a * (1.0 - e2) / w ** 1.5         # meridional radius of curvature
        return (n * np.cos(lat) * math.radians(abs(transform.a)),
                m * math.radians(abs(transform.e)))
    factor = crs.linear_units_factor[1] if crs.is_projected else 1.0
    return (np.full(rows.shape, abs(transform.a) * factor), np.full(rows.shape, abs(transform.e) * factor))


def _neighbours(z: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """The 8 neighbours of every interior pixel of a haloed array. A missing one (nodata, outside the DEM) is
    extrapolated from the centre and the opposite neighbour, or for a corner from the two filled side neighbours:
    exact on a plane, so slopes at the DEM's edges are as good as inside."""
    c = z[1:-1, 1:-1]
    raw = {(di, dj): z[1 + di:z.shape[0] - 1 + di, 1 + dj:z.shape[1] - 1 + dj]
           for di in (-1, 0, 1) for dj in (-1, 0, 1) if (di, dj) != (0, 0)}
    out = {}
    for key in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        v, opposite = raw[key], raw[(-key[0], -key[1])]
        out[key] = np.where(np.isfinite(v), v, np.where(np.isfinite(opposite), 2 * c - opposite, c))
    for di, dj in ((-1, -1), (-1, 1), (1, -1), (1, 1)):
        v, opposite = raw[(di, dj)], raw[(-di, -dj)]
        sides = out[(di, 0)] + out[(0, dj)] - c
        out[(di, dj)] = np.where(np.isfinite(v), v, np.where(np.isfinite(opposite), 2 * c - opposite, sides))
    return out


def horn_gradient(z: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(dz/d east, dz/d north) by Horn's 3×3 method on a 1-pixel-haloed array; dx, dy in metres per output row."""
    nb = _neighbours(z)
    a, b, c = nb[(-1, -1)], nb[(-1, 0)], nb[(-1, 1)]
    d, f = nb[(0, -1)], nb[(0, 1)]
    g, h, i = nb[(1, -1)], nb[(1, 0)], nb[(1, 1)]
    dzdx = ((c + 2 * f + i) - (a + 2 * d + g)) / (8.0 * dx[:, None])
    dzdy = ((a + 2 * b + c) - (g + 2 * h + i)) / (8.0 * dy[:, None])  # rows run south, north is up
    return dzdx, dzdy


def slope_aspect_hillshade(dzdx, dzdy, sun_azimuth: float = 315.0, sun_altitude: float = 45.0):
    """Slope (degrees), aspect (degrees clockwise from north of the downslope direction; −1 flat), hillshade 0–255."""
    slope = np.degrees(np.arctan(np.hypot(dzdx, dzdy)))
    aspect = np.mod(np.degrees(np.arctan2(-dzdx, -dzdy)), 360.0)
    aspect = np.where((dzdx == 0) & (dzdy == 0), FLAT_ASPECT, aspect)
    az, alt = math.radians(sun_azimuth), math.radians(sun_altitude)
    sun = (math.sin(az) * math.cos(alt), math.cos(az) * math.cos(alt), math.sin(alt))
    norm = np.sqrt(1.0 + dzdx ** 2 + dzdy ** 2)
    shade = 255.0 * np.clip((-dzdx * sun[0] - dzdy * sun[1] + sun[2]) / norm, 0.0, 1.0)
    return slope, aspect, shade


def tpi_kernel(radius: float, dx: float, dy: float) -> np.ndarray:
    """Disc of `radius` metres in pixels (an ellipse where pixels are not square in metres), centre excluded."""
    ri, rj = int(radius // dy), int(radius // dx)
    if ri < 1 and rj < 1:
        raise InputError(f"The TPI radius ({radius:g} m) is smaller than one pixel ({dx:.3g} × {dy:.3g} m).")
    i, j = np.mgrid[-ri:ri + 1, -rj:rj + 1]
    kernel = ((i * dy) ** 2 + (j * dx) ** 2 <= radius ** 2).astype(np.float64)
    kernel[ri, rj] = 0.0
    return kernel


def _masked_mean(z: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Mean of the valid values under `kernel` around each pixel (FFT: cost independent of the radius)."""
    valid = np.isfinite(z)
    total = fftconvolve(np.where(valid, z, 0.0), kernel[::-1, ::-1], mode="same")
    n = fftconvolve(valid.astype(np.float64), kernel[::-1, ::-1], mode="same")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0.5, total / np.maximum(n, 1e-9), np.nan)


def roughness(z: np.ndarray) -> np.ndarray:
    """Largest elevation difference within each 3×3 neighbourhood (GDAL's definition), nodata ignored."""
    hi = ndimage.maximum_filter(np.where(np.isfinite(z), z, -np.inf), size=3, mode="nearest")
    lo = ndimage.minimum_filter(np.where(np.isfinite(z), z, np.inf), size=3, mode="nearest")
    return hi - lo


def disc_footprint(radius: float, dx: float, dy: float, centre: bool = True) -> np.ndarray:
    """Pixels within `radius` metres of the centre (an ellipse of pixels where pixels are not square in metres)."""
    ri, rj = int(radius // dy), int(radius // dx)
    i, j = np.mgrid[-ri:ri + 1, -rj:rj + 1]
    footprint = (i * dy) ** 2 + (j * dx) ** 2 <= radius ** 2 * (1 + 1e-9)
    footprint[ri, rj] = centre
    return footprint


def _rectangles(footprint: np.ndarray) -> list[tuple[int, int]]:
    """(half-height, half-width) of nested rectangles whose union is a symmetric convex footprint (widest row in the
    middle): one per change of row width."""
    ki = footprint.shape[0] // 2
    half = [int(np.count_nonzero(footprint[ki + d])) // 2 for d in range(ki + 1)]
    return [(d, half[d]) for d in range(ki + 1) if d == ki or half[d + 1] != half[d]]


def staircase(footprint: np.ndarray, steps: int = 16) -> np.ndarray:
    """At most `steps` nested rectangles inscribed in a symmetric convex footprint (the footprint itself when it has
    no more rows per half): its largest/smallest value then costs 2·steps passes whatever the radius."""
    ki, kj = footprint.shape[0] // 2, footprint.shape[1] // 2
    if ki + 1 <= steps:
        return footprint
    half = [int(np.count_nonzero(footprint[ki + d])) // 2 for d in range(ki + 1)]
    out = np.zeros_like(footprint, dtype=bool)
    for d in np.unique(np.round(np.linspace(0, ki, steps)).astype(int)):
        out[ki - d:ki + d + 1, kj - half[d]:kj + half[d] + 1] = True
    return out


def _extreme(z: np.ndarray, footprint: np.ndarray, largest: bool) -> np.ndarray:
    """Largest (or smallest) value under a symmetric convex footprint around each pixel, as the extreme over its
    nested rectangles, each in two 1-D passes. Cells outside the array count as −∞ (+∞)."""
    sign = 1.0 if largest else -1.0
    v = sign * z
    out = np.full(z.shape, -np.inf)
    for d, w in _rectangles(footprint):
        rect = ndimage.maximum_filter1d(v, 2 * d + 1, axis=0, mode="constant", cval=-np.inf)
        rect = ndimage.maximum_filter1d(rect, 2 * w + 1, axis=1, mode="constant", cval=-np.inf)
        np.maximum(out, rect, out=out)
    return sign * out


def relative_relief(z: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """Highest minus lowest valid elevation under `footprint` around each pixel (nodata ignored)."""
    valid = np.isfinite(z)
    return _extreme(np.where(valid, z, -np.inf), footprint, True) - _extreme(np.where(valid, z, np.inf), footprint,
                                                                              False)


def masked_sum(values: np.ndarray, footprint: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sum, count) of the valid values under `footprint` around each pixel; each pixel's sum is computed on its own,
    so a window gives bit for bit what the whole array gives."""
    valid = np.isfinite(values)
    weights = footprint.astype(np.float64)
    total = ndimage.correlate(np.where(valid, values, 0.0), weights, mode="constant", cval=0.0)
    count = ndimage.correlate(valid.astype(np.float64), weights, mode="constant", cval=0.0)
    return total, count


def tpi_pixels(z: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """Elevation minus the mean valid elevation under `ring` (a disc without its centre); NaN with no neighbour."""
    total, count = masked_sum(z, ring)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0.5, z - total / np.maximum(count, 1.0), np.nan)


def slope_sum(slope: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """Sum of the slopes (degrees) under `footprint`; nodata and cells beyond the DEM count as the mean of the valid
    ones, so the sum does not drop at the DEM's edges and around holes."""
    total, count = masked_sum(slope, footprint)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0.5, total / np.maximum(count, 1.0) * float(footprint.sum()), np.nan)


def valley_depth(z: np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """Ridge level minus elevation, the ridge level being the closing of the DEM by `footprint` (see the module
    docstring for how this approximates SAGA's Valley Depth); ≥ 0, NaN where the elevation is nodata.

    The ridge level at a cell is the lowest of the highest valid elevations of the discs that hold it, discs centred
    beyond the DEM's edge or in holes included: the plane stays a plane up to the DEM's edges (no false valley along
    a downhill edge), while a valley running out of the DEM may come out shallower within the radius of the edge.
    """
    valid = np.isfinite(z)
    dilated = _extreme(np.where(valid, z, -np.inf), footprint, True)
    ridge = _extreme(np.where(np.isfinite(dilated), dilated, np.inf), footprint, False)
    return np.where(valid, ridge - z, np.nan)


def _check_thesis_parameters(relief_pixels, valley_depth_radius) -> None:
    if not float(relief_pixels).is_integer() or relief_pixels < 1:
        raise InputError(f"The relative relief neighbourhood (RELIEF_PIXELS) must be a whole number of pixels of at "
                         f"least 1, not {relief_pixels}.")
    if not valley_depth_radius > 0:
        raise InputError(f"The valley depth radius (VALLEY_DEPTH_RADIUS) must be a positive number of metres, not "
                         f"{valley_depth_radius}.")


def _check_reach(dem, src, pixel: float, tpi_radius: float, relief_pixels, valley_depth_radius: float) -> None:
    """Refuse neighbourhoods wider than MAX_NEIGHBOURHOOD_PIXELS: each window is read with that many pixels around it,
    so a radius of 1e9 m would need petabytes (and beyond the DEM every pixel has the same neighbourhood anyway)."""
    for name, label, pixels in (("TPI_RADIUS", "TPI radius", tpi_radius / pixel),
                                ("RELIEF_PIXELS", "relative relief neighbourhood", float(relief_pixels)),
                                ("VALLEY_DEPTH_RADIUS", "valley depth radius", valley_depth_radius / pixel)):
        if pixels > MAX_NEIGHBOURHOOD_PIXELS:
            raise InputError(f"The {label} ({name}) reaches {pixels:.3g} pixels of DEM '{dem}' ({pixel:.3g} m "
                             f"pixels, {src.width}×{src.height} px); at most {MAX_NEIGHBOURHOOD_PIXELS} pixels are "
                             f"supported. Give a smaller {name}.")


def _reach(footprint: np.ndarray) -> int:
    return max(footprint.shape) // 2


@dataclass
class Neighbourhoods:
    """The thesis's footprints, one set for the whole DEM (its centre row's pixel size), so every window computes
    exactly what a whole-array pass would."""
    relief: np.ndarray
    tpi_rings: list
    slope_sum: np.ndarray
    valley: np.ndarray
    tags: dict  # the parameters, recorded in the output's metadata

    @classmethod
    def of(cls, dem, dx_all: np.ndarray, dy_all: np.ndarray, relief_pixels: int, valley_depth_radius: float):
        dx0, dy0 = float(dx_all[len(dx_all) // 2]), float(dy_all[len(dy_all) // 2])
        if valley_depth_radius < min(dx0, dy0):
            raise InputError(f"The valley depth radius (VALLEY_DEPTH_RADIUS, {valley_depth_radius:g} m) is smaller "
                             f"than one pixel of DEM '{dem}' ({dx0:.3g} × {dy0:.3g} m); give a radius of at least "
                             f"the valley half-width you want to measure.")
        return cls(disc_footprint(relief_pixels * dy0, dx0, dy0),
                   [disc_footprint(n * dy0, dx0, dy0, centre=False) for n in TPI_PIXELS],
                   disc_footprint(SLOPE_SUM_PIXELS * dy0, dx0, dy0),
                   staircase(disc_footprint(valley_depth_radius, dx0, dy0)),
                   {"RELIEF_PIXELS": relief_pixels, "VALLEY_DEPTH_RADIUS_M": valley_depth_radius})

    @property
    def names(self) -> list[str]:
        """TERRAIN_BANDS, with the relative relief named after its neighbourhood (relative_relief_<N>)."""
        relief = relief_band(self.tags["RELIEF_PIXELS"])
        return [relief if n == relief_band(RELIEF_PIXELS) else n for n in TERRAIN_BANDS]

    @property
    def halo(self) -> int:
        """Pixels each window needs around it (the valley's closing reaches twice its radius)."""
        return max(_reach(self.relief), *(_reach(r) for r in self.tpi_rings), _reach(self.slope_sum) + 1,
                   2 * _reach(self.valley))

    def bands(self, z, halo: int, h: int, w: int, row0: int, dx_all, dy_all) -> list[np.ndarray]:
        """relative relief, tpi_3, tpi_9, slope sum, valley depth of the h×w window of `z` (read with `halo`),
        each computed on only as much of the halo as it needs."""
        def around(m):  # the window plus m pixels around it, and the window's part of a result on that
            return z[halo - m:halo + h + m, halo - m:halo + w + m], (slice(m, m + h), slice(m, m + w))

        out = []
        for footprint, derive in ((self.relief, relative_relief), *((r, tpi_pixels) for r in self.tpi_rings)):
            sub, inner = around(_reach(footprint))
            out.append(derive(sub, footprint)[inner])
        m = _reach(self.slope_sum)  # the slope sum needs slopes m pixels around the window, so elevations m + 1
        sub, _ = around(m + 1)
        rows = np.clip(np.arange(row0 - m, row0 + h + m), 0, len(dx_all) - 1)
        gx, gy = horn_gradient(sub, dx_all[rows], dy_all[rows])
        slopes = np.where(np.isfinite(sub[1:-1, 1:-1]), np.degrees(np.arctan(np.hypot(gx, gy))), np.nan)
        out.append(slope_sum(slopes, self.slope_sum)[m:m + h, m:m + w])
        sub, inner = around(2 * _reach(self.valley))
        out.append(valley_depth(sub, self.valley)[inner])
        return out


def terrain_derivatives(
    dem: str | os.PathLike,
    out_path: str | os.PathLike,
    tpi_radius: float = 100.0,
    z_factor: float = 1.0,
    sun_azimuth: float = 315.0,
    sun_altitude: float = 45.0,
    extent: Sequence[float] | None = None,
    extent_crs=None,
    band: int = 1,
    relief_pixels: int = RELIEF_PIXELS,
    valley_depth_radius: float = VALLEY_DEPTH_RADIUS,
    block: int = raster.DEFAULT_BLOCK,
    progress: Progress | None = None,
) -> Path:
    """Write TERRAIN_BANDS (Float32, nodata NaN) on the DEM's grid: elevation in metres (times `z_factor` for DEMs in
    other units); TPI = elevation minus the mean elevation within `tpi_radius` metres (negative in valleys)."""
    progress = or_null(progress)
    if not (math.isfinite(tpi_radius) and tpi_radius > 0):
        raise InputError(f"The TPI radius (TPI_RADIUS) must be a positive number of metres, not {tpi_radius}.")
    if not (math.isfinite(z_factor) and z_factor > 0):
        raise InputError(f"The Z factor (Z_FACTOR) must be a positive number (metres per elevation unit of the DEM: "
                         f"1 for DEMs in metres, 0.3048 for feet), not {z_factor}.")
    _check_thesis_parameters(relief_pixels, valley_depth_radius)
    with raster.open_raster(dem) as src:
        if band < 1 or band > src.count:
            raise InputError(f"DEM '{dem}' has {src.count} band(s); band {band} does not exist.")
        grid = raster.target_grid(src, extent=extent, extent_crs=extent_crs)
        offset = raster.window_from_extent(src, grid.bounds) if extent is not None else Window(0, 0, *src.shape[::-1])
        dx_all, dy_all = pixel_metres(src.crs, src.transform, np.arange(src.height))
        if (dx_all < 0.01).any() or (dx_all > 1e5).any():
            raise InputError(f"DEM '{dem}' has pixels of {dx_all.min():.3g}–{dx_all.max():.3g} m: check its CRS.")
        _check_reach(dem, src, float(min(dx_all.min(), dy_all.min())), tpi_radius, relief_pixels, valley_depth_radius)
        progress.log(f"DEM pixels: {dx_all.mean():.2f} m × {dy_all.mean():.2f} m "
                     f"({'geographic CRS, converted per row' if src.crs.is_geographic else 'projected CRS'})")
        thesis = Neighbourhoods.of(dem, dx_all, dy_all, int(relief_pixels), valley_depth_radius)
        halo = max(1, int(tpi_radius // min(dx_all.min(), dy_all.min())) + 1, thesis.halo)
        n_windows = raster.count_windows(grid.width, grid.height, block)
        tags = {"LANDSLIDE_MAPPER": "terrain", "TPI_RADIUS_M": tpi_radius, "Z_FACTOR": z_factor,
                "SOURCE": os.path.basename(str(dem)), **thesis.tags}
        with raster.create_raster(out_path, width=grid.width, height=grid.height, crs=grid.crs,
                                  transform=grid.transform, dtype="float32", descriptions=thesis.names,
                                  nodata=np.nan, tags=tags) as dst:
            n_valid, fills = 0, False
            for k, win in enumerate(raster.block_windows(grid.width, grid.height, block)):
                check_canceled(progress)
                row0, col0 = int(win.row_off + offset.row_off), int(win.col_off + offset.col_off)
                h, w = int(win.height), int(win.width)
                z = _read_haloed(src, band, row0, col0, h, w, halo)
                absurd = np.abs(z) >= raster.ABSURD  # ±Inf, ±3.4e38: fill values, not elevations
                if absurd.any():
                    z[absurd], fills = np.nan, True
                z *= z_factor
                core = z[halo:halo + h, halo:halo + w]
                out = _terrain_window(z, halo, h, w, row0, dx_all, dy_all, tpi_radius, sun_azimuth, sun_altitude,
                                      thesis)
                valid = np.isfinite(core)
                out[:, ~valid] = np.nan
                n_valid += int(np.count_nonzero(valid))
                dst.write(out, window=win)
                progress.set_progress(100.0 * (k + 1) / n_windows)
            if n_valid == 0:  # refused inside the output's block: no file is left
                where = " inside the extent (EXTENT)" if extent is not None else ""
                also = "; ±Inf or 1e30 and more taken as nodata" if fills else ""
                raise InputError(f"DEM '{dem}' (INPUT) holds only nodata{where} (band {band}, nodata value "
                                 f"{src.nodatavals[band - 1]}{also}), so every terrain band would be empty. Check "
                                 f"the DEM's nodata value and that it covers the area, then run again.")
    if fills:
        progress.log(f"Warning: DEM '{dem}' (INPUT) holds ±Inf or values of 1e30 and more (a nodata value the file "
                     f"does not declare, such as -3.4e38?); those pixels were taken as nodata.")
    progress.log(f"Terrain written: {out_path} ({grid.width}×{grid.height} px, TPI radius {tpi_radius:g} m)")
    return Path(out_path)


def _terrain_window(z, halo: int, h: int, w: int, row0: int, dx_all, dy_all, tpi_radius: float, sun_azimuth: float,
                    sun_altitude: float, thesis) -> np.ndarray:
    """Every terrain band of one window from its haloed elevations `z` (metres)."""
    rows = np.arange(row0, row0 + h)
    dx, dy = dx_all[rows], dy_all[rows]
    core = z[halo:halo + h, halo:halo + w]
    dzdx, dzdy = horn_gradient(z[halo - 1:halo + h + 1, halo - 1:halo + w + 1], dx, dy)
    slope, aspect, shade = slope_aspect_hillshade(dzdx, dzdy, sun_azimuth, sun_altitude)
    kernel = tpi_kernel(tpi_radius, float(dx.mean()), float(dy.mean()))
    ki, kj = kernel.shape[0] // 2, kernel.shape[1] // 2
    sub = z[halo - ki:halo + h + ki, halo - kj:halo + w + kj]
    tpi = core - _masked_mean(sub, kernel)[ki:ki + h, kj:kj + w]
    rough = roughness(z[halo - 1:halo + h + 1, halo - 1:halo + w + 1])[1:-1, 1:-1]
    geology = thesis.bands(z, halo, h, w, row0, dx_all, dy_all)
    return np.stack([core, slope, aspect, shade, tpi, rough, *geology]).astype(np.float32)


def _read_haloed(src, band: int, row0: int, col0: int, h: int, w: int, halo: int) -> np.ndarray:
    """Elevations of a window plus `halo` pixels around it (NaN beyond the DEM's edge), float64."""
    r0, c0 = max(0, row0 - halo), max(0, col0 - halo)
    r1, c1 = min(src.height, row0 + h + halo), min(src.width, col0 + w + halo)
    out = np.full((h + 2 * halo, w + 2 * halo), np.nan)
    data = raster.read_float(src, band, Window(c0, r0, c1 - c0, r1 - r0)).astype(np.float64)
    out[r0 - (row0 - halo):r1 - (row0 - halo), c0 - (col0 - halo):c1 - (col0 - halo)] = data
    return out
