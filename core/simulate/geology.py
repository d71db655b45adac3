"""A synthetic multi-class geological scene with known truth: bedrock outcrops, wetlands, sharp (dendritic) and smooth
(parallel) ravines incised into marine-clay flats, and landslide scars on ravine sides — the four mapping jobs of the
geological-mapping thesis in one scene.

As the event scene: every shape is drawn once, up front, as geometry (blobs and polylines in map metres); each window
evaluates elevation, an optical image (B02, B03, B04, B08) and the class labels from the shapes that touch it, so any
block size gives the same pixels and memory stays bounded.
"""
from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import affine
import numpy as np
from rasterio.crs import CRS

from .. import raster
from ...common.errors import InputError
from ...common.outputs import FolderKind, atomic_output, refuse_unsafe_target
from ...common.progress import Progress, check_canceled, or_null
from ..raster import DEFAULT_BLOCK, block_windows, count_windows, create_raster
from .fields import hash01, Waves

BACKGROUND, BEDROCK, WETLAND, RAVINE_SHARP, RAVINE_SMOOTH, LANDSLIDE = range(6)
GEOLOGY_CLASSES = [
    {"value": BACKGROUND, "name": "background", "color": "#f0e6c8"},
    {"value": BEDROCK, "name": "bedrock", "color": "#7f7f7f"},
    {"value": WETLAND, "name": "wetland", "color": "#1f78b4"},
    {"value": RAVINE_SHARP, "name": "ravine_sharp", "color": "#b2182b"},
    {"value": RAVINE_SMOOTH, "name": "ravine_smooth", "color": "#33a02c"},
    {"value": LANDSLIDE, "name": "landslide", "color": "#e8702a"},
]
OPTICAL_BANDS = ("B02", "B03", "B04", "B08")
# Surface reflectance (B02, B03, B04, B08) per class: clay-flat crops, bare grey rock, wet meadow (NIR low, NDWI
# high), forested sharp ravines, grassy smooth ravines, fresh soil scars.
_REFLECTANCE = np.array([
    [0.040, 0.070, 0.050, 0.300],
    [0.110, 0.125, 0.140, 0.200],
    [0.045, 0.065, 0.045, 0.110],
    [0.025, 0.045, 0.025, 0.270],
    [0.038, 0.072, 0.048, 0.290],
    [0.080, 0.105, 0.135, 0.195],
], dtype=np.float32)

GEOLOGY_SCENE = FolderKind("simulated geology scene", "classes.json", frozenset(
    [f"{n}.tif{x}" for n in ("dem", "optical", "labels") for x in ("", ".aux.xml")] + ["classes.json"]))


@dataclass
class GeologyScene:
    """Paths and grid of one simulated geology scene (all rasters share one grid)."""

    dem: Path
    optical: Path
    labels_raster: Path
    classes_json: Path
    classes: list
    width: int
    height: int
    crs: str
    transform: affine.Affine
    counts: dict  # class name → shapes drawn


@dataclass
class _Blob:
    cx: float
    cy: float
    radius: float
    harmonics: np.ndarray  # (k, 2) amplitude, phase of orders 2..k+1

    def inside(self, x, y, scale: float = 1.0):
        """Normalised radius (< 1 inside) on the grid x (columns) × y (rows)."""
        dx = x[None, :] - self.cx
        dy = y[:, None] - self.cy
        theta = np.arctan2(dy, dx)
        r = np.ones_like(theta)
        for order, (amp, phase) in enumerate(self.harmonics, start=2):
            r += amp * np.cos(order * theta + phase)
        return np.hypot(dx, dy) / (self.radius * scale * r)

    def bbox(self, margin: float = 1.6):
        m = self.radius * margin
        return self.cx - m, self.cy - m, self.cx + m, self.cy + m


@dataclass
class _Line:
    points: np.ndarray  # (n, 2) map coordinates
    half_width: float

    def bbox(self, margin: float):
        return (*(self.points.min(axis=0) - margin), *(self.points.max(axis=0) + margin))


def _touches(box, bounds) -> bool:
    return box[0] <= bounds[2] and box[2] >= bounds[0] and box[1] <= bounds[3] and box[3] >= bounds[1]


def _distance(line: _Line, x, y) -> np.ndarray:
    """Distance (m) from each pixel centre of the grid x × y to the polyline."""
    px = x[None, :]
    py = y[:, None]
    best = np.full((len(y), len(x)), np.inf)
    for (x0, y0), (x1, y1) in zip(line.points[:-1], line.points[1:]):
        vx, vy = x1 - x0, y1 - y0
        t = np.clip(((px - x0) * vx + (py - y0) * vy) / max(vx * vx + vy * vy, 1e-9), 0.0, 1.0)
        np.minimum(best, np.hypot(px - x0 - t * vx, py - y0 - t * vy), out=best)
    return best


def _blob(rng, cx, cy, radius) -> _Blob:
    k = 3
    return _Blob(cx, cy, radius, np.stack([rng.uniform(0.0, 0.18, k) / np.arange(1, k + 1),
                                           rng.uniform(0, 2 * np.pi, k)], axis=1))


def _walk(rng, start, heading, length, step, wiggle) -> np.ndarray:
    pts = [np.asarray(start, float)]
    for _ in range(max(2, int(length / step))):
        heading += rng.normal(0.0, wiggle)
        pts.append(pts[-1] + step * np.array([np.cos(heading), np.sin(heading)]))
    return np.array(pts)


class _Geology:
    """Every shape of the scene, drawn once from the seed."""

    def __init__(self, rng, x0, y0, w_m, h_m, ps):
        self.ps = ps
        self.relief = Waves.draw(rng, 12, (800.0, 4000.0), 3.0)
        self.cover = Waves.draw(rng, 10, (200.0, 1200.0), 1.0)
        area = w_m * h_m / 1e6  # km²
        centre = lambda: (x0 + rng.uniform(0, w_m), y0 - rng.uniform(0, h_m))  # noqa: E731
        self.outcrops = [_blob(rng, *centre(), rng.uniform(8, 16) * ps) for _ in range(max(2, int(3.0 * area)))]
        self.wetlands = [_blob(rng, *centre(), rng.uniform(8, 15) * ps) for _ in range(max(2, int(2.5 * area)))]
        # sharp ravines: dendritic trunks with side branches, narrow V
        self.sharp = []
        for _ in range(max(1, int(1.0 * area))):
            trunk = _walk(rng, centre(), rng.uniform(0, 2 * np.pi), rng.uniform(40, 70) * ps, 4 * ps, 0.25)
            self.sharp.append(_Line(trunk, 2.0 * ps))
            for k in rng.choice(np.arange(2, len(trunk) - 1), size=min(4, len(trunk) - 3), replace=False):
                a = np.arctan2(*(trunk[k + 1] - trunk[k])[::-1]) + rng.choice([-1, 1]) * rng.uniform(0.7, 1.2)
                self.sharp.append(_Line(_walk(rng, trunk[k], a, rng.uniform(12, 25) * ps, 3 * ps, 0.3),
                                        1.5 * ps))
        # smooth ravines: sets of parallel, gently curving, broad U-shaped valleys
        self.smooth = []
        for _ in range(max(1, int(0.6 * area))):
            (cx, cy), a = centre(), rng.uniform(0, np.pi)
            normal = np.array([-np.sin(a), np.cos(a)])
            for j in range(3):
                start = np.array([cx, cy]) + (j - 1) * rng.uniform(9, 12) * ps * normal
                self.smooth.append(_Line(_walk(rng, start, a, rng.uniform(35, 55) * ps, 4 * ps, 0.06),
                                         3.5 * ps))
        # landslide scars on ravine sides
        self.scars = []
        lines = self.sharp + self.smooth
        for _ in range(max(2, int(3.0 * area))):
            line = lines[rng.integers(len(lines))]
            p = line.points[rng.integers(len(line.points))]
            side = rng.uniform(0, 2 * np.pi)
            off = line.half_width + rng.uniform(2, 4) * ps
            self.scars.append(_blob(rng, p[0] + off * np.cos(side), p[1] + off * np.sin(side),
                                    rng.uniform(3.5, 6.0) * ps))

    def render(self, x, y, i, j):
        """Elevation (m), reflectance (4, h, w) and class labels for pixel centres x × y (pixel indices i, j)."""
        h, w = len(y), len(x)
        bounds = (x.min(), y.min(), x.max(), y.max())
        z = 30.0 + self.relief.grid(x, y).astype(np.float64)
        labels = np.zeros((h, w), dtype=np.uint8)
        rough = hash01(i[:, None], j[None, :], 7) - 0.5
        for b in self.wetlands:
            if _touches(b.bbox(), bounds):
                r = b.inside(x, y)
                inside = r < 1.0
                z = np.where(inside, 24.0 + 0.05 * rough, z)  # flat and low
                labels[inside] = WETLAND
        for b in self.outcrops:
            if _touches(b.bbox(), bounds):
                r = b.inside(x, y)
                inside = r < 1.0
                z += np.where(inside, 12.0 * (1.0 - r ** 2) + 2.5 * rough, 0.0)
                labels[inside] = BEDROCK
        for line, sharp in [(s, False) for s in self.smooth] + [(s, True) for s in self.sharp]:
            if not _touches(line.bbox(3 * line.half_width), bounds):
                continue
            d = _distance(line, x, y) / line.half_width
            if sharp:  # V: steep, deep, narrow
                z -= 9.0 * np.clip(1.0 - d / 1.6, 0.0, None)
            else:  # U: broad, shallow, rounded
                z -= 5.0 * np.exp(-(d / 1.1) ** 4)
            labels[d < 1.0] = RAVINE_SHARP if sharp else RAVINE_SMOOTH
        for b in self.scars:
            if _touches(b.bbox(), bounds):
                r = b.inside(x, y)
                inside = r < 1.0
                z -= np.where(inside, 2.5 * (1.0 - r) + 1.5 * rough, 0.0)
                labels[inside] = LANDSLIDE
        cover = self.cover.grid(x, y)
        refl = _REFLECTANCE[labels].transpose(2, 0, 1).copy()
        refl *= (1.0 + 0.08 * cover)[None]
        noise = np.stack([hash01(i[:, None], j[None, :], 11 + b) - 0.5 for b in range(4)]).astype(np.float32)
        refl += 0.02 * noise * refl / 0.1
        return z.astype(np.float32), refl, labels


def simulate_geology(out_dir, width: int = 384, height: int = 384, seed: int = 0, pixel_size: float = 10.0,
                     crs: str = "EPSG:32633", origin: tuple[float, float] = (500000.0, 7000000.0),
                     block: int = DEFAULT_BLOCK, progress: Progress | None = None) -> GeologyScene:
    """Write a synthetic multi-class geology scene (see module docstring) into `out_dir`: dem.tif (elevation),
    optical.tif (B02, B03, B04, B08 reflectance × 10000), labels.tif (class values with colours and class names,
    255 = nodata) and classes.json (the class table: value, name, colour)."""
    progress = or_null(progress)
    width, height, block = int(width), int(height), int(block)
    if width < 64 or height < 64:
        raise InputError(f"A simulated geology scene needs at least 64×64 pixels (WIDTH × HEIGHT), not "
                         f"{width}×{height}.")
    if width * height > 2 ** 26:
        raise InputError(f"A simulated geology scene of {width}×{height} pixels (WIDTH × HEIGHT) is too large: at "
                         f"most {2 ** 26:,} pixels. Give a smaller WIDTH or HEIGHT.")
    if not pixel_size > 0:
        raise InputError(f"Pixel size must be positive, not {pixel_size}.")
    crs_obj = CRS.from_user_input(crs)
    out = Path(out_dir)
    refuse_unsafe_target(out.absolute(), is_dir=True, parameter="OUTPUT_FOLDER", kind=GEOLOGY_SCENE)
    transform = affine.Affine.translation(*origin) * affine.Affine.scale(pixel_size, -pixel_size)
    rng = np.random.default_rng(seed)
    geo = _Geology(rng, origin[0], origin[1], width * pixel_size, height * pixel_size, pixel_size)
    grid = dict(width=width, height=height, crs=crs_obj, transform=transform)
    tags = {"SIMULATED": "landslide_mapper.core.simulate.geology", "SEED": seed}
    classes = [dict(c) for c in GEOLOGY_CLASSES]
    table_tag = json.dumps(classes)
    with ExitStack() as stack:
        stack.enter_context(raster.bounded_gdal_cache())
        folder = stack.enter_context(atomic_output(out, is_dir=True, kind=GEOLOGY_SCENE))
        (folder / "classes.json").write_text(json.dumps({"classes": classes}, indent=2))
        with ExitStack() as files:
            dem = files.enter_context(create_raster(folder / "dem.tif", **grid, dtype="float32",
                                                    descriptions=["elevation"], nodata=float("nan"),
                                                    tags={**tags, "UNITS": "m"}))
            opt = files.enter_context(create_raster(folder / "optical.tif", **grid, dtype="uint16",
                                                    descriptions=list(OPTICAL_BANDS), nodata=0,
                                                    tags={**tags, "EPOCH": "post", "SENSOR": "S2"}))
            lab = files.enter_context(create_raster(folder / "labels.tif", **grid, dtype="uint8",
                                                    descriptions=["class"], nodata=255,
                                                    tags={**tags, "LANDSLIDE_MAPPER_CLASSES": table_tag}))
            lab.write_colormap(1, raster.colour_table(classes))
            n = count_windows(width, height, block)
            for k, win in enumerate(block_windows(width, height, block)):
                check_canceled(progress)
                i = np.arange(win.row_off, win.row_off + win.height)
                j = np.arange(win.col_off, win.col_off + win.width)
                x = origin[0] + (j + 0.5) * pixel_size
                y = origin[1] - (i + 0.5) * pixel_size
                z, refl, labels = geo.render(x, y, i, j)
                dem.write(z[None], window=win)
                opt.write(np.clip(refl * 10000.0, 1, 65535).astype(np.uint16), window=win)
                lab.write(labels[None], window=win)
                progress.set_progress(95.0 * (k + 1) / n)
        raster.set_category_names(folder / "labels.tif", classes)
    counts = {"bedrock": len(geo.outcrops), "wetland": len(geo.wetlands), "ravine_sharp": len(geo.sharp),
              "ravine_smooth": len(geo.smooth), "landslide": len(geo.scars)}
    progress.log("Drew " + ", ".join(f"{v} {k}" for k, v in counts.items()) + ".")
    progress.set_progress(100.0)
    return GeologyScene(out / "dem.tif", out / "optical.tif", out / "labels.tif", out / "classes.json", classes,
                        width, height, crs_obj.to_string(), transform, counts)
