"""Terrain derivatives of a DEM: slope, aspect, hillshade, TPI, roughness, computed window by window.

Gradients need metres on both axes. In a projected CRS a pixel is its size times the CRS's unit (metre, US foot);
in a geographic CRS (EPSG:4326 DEMs such as the 30 m AW3D/SRTM DSMs) a pixel of Δλ × Δφ degrees is
N(φ)·cos φ·Δλ by M(φ)·Δφ metres on the CRS's ellipsoid, computed per row, so slopes are right at any latitude
(GDAL's constant `-s 111120` overstates east–west gradients by 1/cos φ).
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from osgeo import osr
from rasterio.windows import Window
from scipy import ndimage
from scipy.signal import fftconvolve

from . import raster
from .errors import InputError
from .progress import Progress, check_canceled, or_null
from .stack import TERRAIN_BANDS

FLAT_ASPECT = -1.0  # aspect of flat ground (no downslope direction), as ArcGIS writes it


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
    block: int = raster.DEFAULT_BLOCK,
    progress: Progress | None = None,
) -> Path:
    """Write elevation, slope, aspect, hillshade, TPI and roughness (Float32, nodata NaN) on the DEM's grid.

    Elevation is in metres (times `z_factor` for DEMs in other units); TPI is the elevation minus the mean
    elevation within `tpi_radius` metres (negative in valleys, positive on ridges).
    """
    progress = or_null(progress)
    if tpi_radius <= 0:
        raise InputError(f"The TPI radius must be a positive number of metres, not {tpi_radius}.")
    with raster.open_raster(dem) as src:
        if band < 1 or band > src.count:
            raise InputError(f"DEM '{dem}' has {src.count} band(s); band {band} does not exist.")
        grid = raster.target_grid(src, extent=extent, extent_crs=extent_crs)
        offset = raster.window_from_extent(src, grid.bounds) if extent is not None else Window(0, 0, *src.shape[::-1])
        dx_all, dy_all = pixel_metres(src.crs, src.transform, np.arange(src.height))
        if (dx_all < 0.01).any() or (dx_all > 1e5).any():
            raise InputError(f"DEM '{dem}' has pixels of {dx_all.min():.3g}–{dx_all.max():.3g} m: check its CRS.")
        progress.log(f"DEM pixels: {dx_all.mean():.2f} m × {dy_all.mean():.2f} m "
                     f"({'geographic CRS, converted per row' if src.crs.is_geographic else 'projected CRS'})")
        halo = max(1, int(tpi_radius // min(dx_all.min(), dy_all.min())) + 1)
        n_windows = raster.count_windows(grid.width, grid.height, block)
        tags = {"LANDSLIDE_MAPPER": "terrain", "TPI_RADIUS_M": tpi_radius, "Z_FACTOR": z_factor,
                "SOURCE": os.path.basename(str(dem))}
        with raster.create_raster(out_path, width=grid.width, height=grid.height, crs=grid.crs,
                                  transform=grid.transform, dtype="float32", descriptions=TERRAIN_BANDS,
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
                out = np.stack([core, slope, aspect, shade, tpi, rough]).astype(np.float32)
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


def _read_haloed(src, band: int, row0: int, col0: int, h: int, w: int, halo: int) -> np.ndarray:
    """Elevations of a window plus `halo` pixels around it (NaN beyond the DEM's edge), float64."""
    r0, c0 = max(0, row0 - halo), max(0, col0 - halo)
    r1, c1 = min(src.height, row0 + h + halo), min(src.width, col0 + w + halo)
    out = np.full((h + 2 * halo, w + 2 * halo), np.nan)
    data = raster.read_float(src, band, Window(c0, r0, c1 - c0, r1 - r0)).astype(np.float64)
    out[r0 - (row0 - halo):r1 - (row0 - halo), c0 - (col0 - halo):c1 - (col0 - halo)] = data
    return out
