"""Synthetic landslide event scenes with known truth: DEM, pre/post Sentinel-2 and Sentinel-1, labels and polygons.

Terrain, land cover and textures are seeded analytic fields (sums of plane waves) evaluated at map coordinates, so each
window is computed on its own, the scene is seamless at any size and memory stays bounded. Landslide outlines and cloud
blobs are drawn once, up front, as geometry; every window rasterises only the shapes that touch it, so the raster and
vector truth agree pixel for pixel whatever the block size.
"""
from __future__ import annotations

import argparse
import errno
import math
import os
import struct
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import affine
import numpy as np
import rasterio
import rasterio.features
import rasterio.windows
from osgeo import gdal, ogr, osr
from rasterio.crs import CRS

from . import raster
from .errors import InputError
from .progress import PrintProgress, Progress, check_canceled, or_null
from .outputs import FolderKind, atomic_output, refuse_unsafe_target
from .postprocess import check_vector_written
from .raster import DEFAULT_BLOCK, block_windows, count_windows, create_raster

# Land-cover classes (internal; only the landslide label is written out).
WATER, FIELD, GRASS, FOREST, ROCK = 0, 1, 2, 3, 4

# Surface reflectance (B02, B03, B04, B08) per class, like Sentinel-2 L2A over the Alps.
_REFLECTANCE = np.array([
    [0.045, 0.055, 0.035, 0.020],   # water: NDVI ≈ −0.27
    [0.035, 0.065, 0.040, 0.320],   # green field: NDVI ≈ 0.78
    [0.035, 0.070, 0.045, 0.300],   # grass / meadow: NDVI ≈ 0.74
    [0.022, 0.040, 0.022, 0.270],   # forest: NDVI ≈ 0.85
    [0.100, 0.120, 0.140, 0.190],   # bare rock: NDVI ≈ 0.15
], dtype=np.float32)
_SOIL = np.array([0.075, 0.105, 0.135, 0.200], dtype=np.float32)        # fresh scar: NDVI ≈ 0.19
_BARE_FIELD = np.array([0.065, 0.085, 0.105, 0.170], dtype=np.float32)  # ploughed / harvested: NDVI ≈ 0.24

# C-band backscatter (VV, VH) in dB at the reference incidence angle, per class.
_BACKSCATTER = np.array([
    [-21.0, -28.0],   # water (specular, dark)
    [-11.0, -18.0],   # field
    [-10.5, -17.0],   # grass
    [-7.5, -13.5],    # forest (volume scattering)
    [-9.0, -17.0],    # rock
], dtype=np.float32)
_NESZ_DB = (-24.0, -26.0)  # noise floor added in linear power (VV, VH)

S2_BANDS = ("B02", "B03", "B04", "B08")
S1_BANDS = ("VV", "VH")
LOOKS = 4.5                        # equivalent number of looks of the speckle
INCIDENCE_DEG = 37.0               # Sentinel-1 IW mid-swath
LOOK_AZIMUTH_DEG = 258.0           # ground → sensor, clockwise from north (ascending, right-looking)
SUN = {"pre": (155.0, 42.0), "post": (150.0, 50.0)}   # azimuth, elevation in degrees
MIN_SOURCE_SLOPE_DEG = 25.0
LENGTH_RANGE_PX = (20.0, 200.0)
LANDSLIDES_PER_250K_PX = 25.0


@dataclass
class SimulatedEvent:
    """Paths and grid of one simulated event scene (all rasters share one grid)."""

    pre_s2: Path
    post_s2: Path
    pre_s1: Path
    post_s1: Path
    dem: Path
    labels_raster: Path
    labels_vector: Path
    width: int
    height: int
    crs: str
    transform: affine.Affine
    n_landslides: int


# --------------------------------------------------------------------------------------------------------------------
# Analytic fields


@dataclass
class _Waves:
    """A sum of plane waves Σ a·cos(kx·x + ky·y + φ): smooth, seamless, cheap to evaluate on any window."""

    kx: np.ndarray
    ky: np.ndarray
    amp: np.ndarray
    phase: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, n: int, wavelengths: tuple[float, float], std: float,
             exponent: float = 1.0) -> "_Waves":
        """Random directions and phases, log-uniform wavelengths (m), amplitude ∝ wavelength^exponent, total `std`."""
        lam = np.exp(rng.uniform(np.log(wavelengths[0]), np.log(wavelengths[1]), n))
        direction = rng.uniform(0.0, np.pi, n)
        k = 2.0 * np.pi / lam
        amp = lam ** exponent * rng.uniform(0.6, 1.4, n)
        amp *= std / np.sqrt(np.sum(amp ** 2) / 2.0)
        return cls(k * np.cos(direction), k * np.sin(direction), amp, rng.uniform(0.0, 2.0 * np.pi, n))

    def plus(self, other: "_Waves") -> "_Waves":
        return _Waves(*(np.concatenate([a, b]) for a, b in zip(
            (self.kx, self.ky, self.amp, self.phase), (other.kx, other.ky, other.amp, other.phase))))

    def grid(self, x: np.ndarray, y: np.ndarray, gradient: bool = False):
        """Values on the grid y (rows) × x (columns): cos(a+b) = cos a cos b − sin a sin b as one matrix product."""
        ax = np.multiply.outer(x, self.kx) + self.phase            # (w, K)
        by = np.multiply.outer(y, self.ky)                         # (h, K)
        cax, sax, cby, sby = np.cos(ax), np.sin(ax), np.cos(by), np.sin(by)
        rows = np.concatenate([cby, -sby], axis=1)                 # (h, 2K)
        value = rows @ np.concatenate([self.amp * cax, self.amp * sax], axis=1).T
        if not gradient:
            return value.astype(np.float32)
        # d/dx cos(ax+by) = −kx·sin(ax+by), sin(ax+by) = sin b cos a + cos b sin a
        sin_rows = np.concatenate([sby, cby], axis=1)
        gx = -(sin_rows @ np.concatenate([self.amp * self.kx * cax, self.amp * self.kx * sax], axis=1).T)
        gy = -(sin_rows @ np.concatenate([self.amp * self.ky * cax, self.amp * self.ky * sax], axis=1).T)
        return value.astype(np.float32), gx.astype(np.float32), gy.astype(np.float32)

    def points(self, x: np.ndarray, y: np.ndarray, gradient: bool = False):
        """Values (and gradient) at scattered points."""
        ph = np.multiply.outer(x, self.kx) + np.multiply.outer(y, self.ky) + self.phase
        value = np.cos(ph) @ self.amp
        if not gradient:
            return value
        s = np.sin(ph)
        return value, -(s @ (self.amp * self.kx)), -(s @ (self.amp * self.ky))


def _sigmoid(t):
    return 1.0 / (1.0 + np.exp(-np.clip(t, -60.0, 60.0)))


@dataclass
class _Valley:
    """A meandering main valley carved through the scene, so every scene has a flat floor with a river."""

    origin: tuple[float, float]     # a point on the axis, scene-relative metres
    direction: tuple[float, float]  # unit vector along the axis
    width: float                    # e-folding half-width of the carve (m)
    meander_amp: float
    meander_k: float
    meander_phase: float
    river_half_width: float

    def carve(self, raw, gx, gy, dx, dy, level, max_depth):
        """Lower the relief near the axis towards `level` (by at most `max_depth`).

        Returns the carved relief, its gradient and the distance to the axis (m).
        """
        tx, ty = self.direction
        along = tx * dx + ty * dy
        s = self.meander_k * along + self.meander_phase
        d = -ty * dx + tx * dy - self.meander_amp * np.sin(s)
        slope_term = self.meander_amp * self.meander_k * np.cos(s)
        g = np.exp(-(d / self.width) ** 2)
        # depth = excess clipped softly to [0, max_depth] (soft-plus corners: no creases in the hillshade)
        soft = 0.15 * max_depth
        excess = raw - level
        depth = soft * (np.logaddexp(0.0, excess / soft) - np.logaddexp(0.0, (excess - max_depth) / soft))
        rate = _sigmoid(excess / soft) - _sigmoid((excess - max_depth) / soft)   # d depth / d relief
        carved = raw - depth * g
        keep = 1.0 - rate * g
        dg = -depth * g * (-2.0 * d / self.width ** 2)           # d(−depth·g)/dd
        return (carved, gx * keep + dg * (-ty - slope_term * tx), gy * keep + dg * (tx - slope_term * ty), d)


@dataclass
class _Terrain:
    """Mountains from plane waves and a carved main valley; everything below `floor` is flattened (soft-plus)."""

    relief: _Waves
    tilt: _Waves
    valley: _Valley
    sigma: float
    floor: float
    softness: float
    base: float

    def _shape(self, raw, gx, gy, dx, dy):
        # the valley axis sits well below the floor level, so it always ends up flat, with a river
        raw, gx, gy, d = self.valley.carve(raw, gx, gy, dx, dy, self.floor - 0.6 * self.sigma, 2.0 * self.sigma)
        t = (raw - self.floor) / self.softness
        flat = self.floor + self.softness * np.logaddexp(0.0, t)
        weight = _sigmoid(t)
        return raw, flat, gx * weight, gy * weight, d

    def grid(self, x, y):
        """(carved relief, elevation m, dz/dx, dz/dy, distance to the valley axis m) on a window.

        The carved relief says how far above or below the valley-floor level a pixel would be before flattening.
        """
        raw, gx, gy = self.relief.grid(x, y, gradient=True)
        dx = (x - self.valley.origin[0])[None, :]
        dy = (y - self.valley.origin[1])[:, None]
        raw, flat, gx, gy, d = self._shape(raw.astype(np.float64), gx, gy, dx, dy)
        tz, tgx, tgy = self.tilt.grid(x, y, gradient=True)
        return (raw.astype(np.float32), (self.base + flat + tz).astype(np.float32),
                (gx + tgx).astype(np.float32), (gy + tgy).astype(np.float32), d.astype(np.float32))

    def points(self, x, y):
        raw, gx, gy = self.relief.points(x, y, gradient=True)
        raw, flat, gx, gy, d = self._shape(raw, gx, gy, x - self.valley.origin[0], y - self.valley.origin[1])
        tz, tgx, tgy = self.tilt.points(x, y, gradient=True)
        return raw, self.base + flat + tz, gx + tgx, gy + tgy, d


@dataclass
class _Fields:
    """Agricultural parcels on a rotated grid in valley floors; each parcel's state comes from a hash of its index."""

    angle: float
    size: tuple[float, float]
    salt: int

    def parcels(self, x2, y2):
        """(vigour 0..1, state 0..1, hedge mask) for map coordinates."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        u = (x2 * c + y2 * s) / self.size[0]
        v = (-x2 * s + y2 * c) / self.size[1]
        i, j = np.floor(u), np.floor(v)
        hedge = ((u - i) < 0.06) | ((v - j) < 0.08)
        return _hash01(i, j, self.salt), _hash01(i, j, self.salt + 1), hedge


def _hash01(i: np.ndarray, j: np.ndarray, salt: int) -> np.ndarray:
    """A uniform number in [0, 1) per integer pair (splitmix64-style), identical in every window."""
    with np.errstate(over="ignore"):
        h = (i.astype(np.int64).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ \
            (j.astype(np.int64).astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)) ^ np.uint64(salt & 0xFFFFFFFF)
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xFF51AFD7ED558CCD)
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xC4CEB9FE1A85EC53)
        h ^= h >> np.uint64(33)
    return (h >> np.uint64(11)).astype(np.float64) / float(2 ** 53)


@dataclass
class _Scene:
    """Every seeded ingredient of a scene, drawn once before any window is computed."""

    terrain: _Terrain
    cover: _Waves      # forest/grass patchiness (std 1)
    texture: _Waves    # fine texture (std 1)
    texture2: _Waves   # second fine texture, decorrelated (std 1)
    pheno: _Waves      # smooth natural change between dates (std 1)
    moisture: _Waves   # smooth soil-moisture change between dates (std 1)
    cloud_edge: _Waves  # ragged cloud edges (std 1)
    fields: _Fields

    def classify(self, raw, slope_deg, cover, axis_distance):
        """Land cover from terrain and noise: water in the lowest flats, rock up high, forest/grass elsewhere."""
        sig, floor = self.terrain.sigma, self.terrain.floor
        rel = raw / sig
        in_floor = raw < floor + 0.3 * self.terrain.softness
        lake = raw < floor - 1.1 * sig
        channel = in_floor & (np.abs(axis_distance) < self.terrain.valley.river_half_width)
        rock = rel + 0.25 * cover > 1.55
        forest = cover > -0.35 + 0.45 * rel
        cls = np.where(forest, FOREST, GRASS)
        cls = np.where(rock, ROCK, cls)
        cls = np.where(in_floor & (slope_deg < 6.0), FIELD, cls)
        cls = np.where(lake | channel, WATER, cls)
        return cls.astype(np.uint8)

    def classify_points(self, x, y):
        raw, elev, gx, gy, axis_distance = self.terrain.points(x, y)
        slope = np.degrees(np.arctan(np.hypot(gx, gy)))
        cls = self.classify(raw, slope, self.cover.points(x, y), axis_distance)
        return cls, elev, slope, gx, gy


def _draw_scene(rng: np.random.Generator, extent: tuple[float, float]) -> _Scene:
    """All seeded fields; `extent` (width, height in m) only places the main valley through the scene."""
    sigma = 280.0
    relief = _Waves.draw(rng, 24, (1000.0, 6000.0), sigma, exponent=1.5)
    detail = _Waves.draw(rng, 32, (150.0, 1000.0), 0.012 * sigma, exponent=1.3)
    relief = relief.plus(detail)
    sigma = float(np.sqrt(np.sum(relief.amp ** 2) / 2.0))
    # the main valley follows low ground: of a few candidate axes through the scene, take the lowest on average
    ox, oy = rng.uniform(0.3, 0.7, 12) * extent[0], -rng.uniform(0.3, 0.7, 12) * extent[1]
    angles = rng.uniform(0.0, np.pi, 12)
    along = np.linspace(-0.5, 0.5, 9) * math.hypot(*extent)
    mean_relief = [np.mean(relief.points(ox[i] + along * math.cos(angles[i]), oy[i] + along * math.sin(angles[i])))
                   for i in range(12)]
    best = int(np.argmin(mean_relief))
    angle = angles[best]
    valley = _Valley(origin=(float(ox[best]), float(oy[best])),
                     direction=(math.cos(angle), math.sin(angle)),
                     width=float(rng.uniform(450.0, 700.0)) * min(1.0, min(extent) / 4000.0),
                     meander_amp=float(rng.uniform(100.0, 350.0)),
                     meander_k=2.0 * np.pi / float(rng.uniform(3000.0, 8000.0)),
                     meander_phase=float(rng.uniform(0.0, 2.0 * np.pi)),
                     river_half_width=float(rng.uniform(12.0, 25.0)))
    terrain = _Terrain(relief=relief, tilt=_Waves.draw(rng, 3, (15000.0, 40000.0), 25.0), valley=valley, sigma=sigma,
                       floor=-1.0 * sigma, softness=0.04 * sigma, base=float(rng.uniform(1300.0, 1700.0)))
    fields = _Fields(angle=float(rng.uniform(0, np.pi)), size=(float(rng.uniform(150, 300)),
                                                                float(rng.uniform(100, 200))),
                     salt=int(rng.integers(0, 2 ** 31)))
    return _Scene(
        terrain=terrain,
        cover=_Waves.draw(rng, 32, (200.0, 3000.0), 1.0, exponent=0.7),
        texture=_Waves.draw(rng, 16, (40.0, 300.0), 1.0, exponent=0.5),
        texture2=_Waves.draw(rng, 16, (30.0, 200.0), 1.0, exponent=0.5),
        pheno=_Waves.draw(rng, 8, (500.0, 4000.0), 1.0),
        moisture=_Waves.draw(rng, 8, (500.0, 4000.0), 1.0),
        cloud_edge=_Waves.draw(rng, 10, (100.0, 600.0), 1.0),
        fields=fields,
    )


# --------------------------------------------------------------------------------------------------------------------
# Geometry: landslide outlines and cloud blobs


class _BoxIndex:
    """A grid hash of bounding boxes, for cheap 'what might touch this box' queries."""

    def __init__(self, cell: float):
        self.cell = cell
        self.cells: dict[tuple[int, int], list[int]] = {}

    def _keys(self, box):
        c = self.cell
        for i in range(int(math.floor(box[0] / c)), int(math.floor(box[2] / c)) + 1):
            for j in range(int(math.floor(box[1] / c)), int(math.floor(box[3] / c)) + 1):
                yield i, j

    def insert(self, box, idx: int) -> None:
        for key in self._keys(box):
            self.cells.setdefault(key, []).append(idx)

    def query(self, box) -> set[int]:
        out: set[int] = set()
        for key in self._keys(box):
            out.update(self.cells.get(key, ()))
        return out


@dataclass
class _Landslides:
    """Outlines (closed rings in scene-relative metres, y up) and per-slide change attributes."""

    rings: list[np.ndarray]
    boxes: np.ndarray        # (n, 4) xmin, ymin, xmax, ymax in relative metres
    d_vv: np.ndarray         # post−pre VV change in the scar (dB)
    d_vh: np.ndarray         # post−pre VH change in the scar (dB)
    brightness: np.ndarray   # soil brightness factor
    regrowth: np.ndarray     # fraction of surviving vegetation in the scar

    def __len__(self) -> int:
        return len(self.rings)


def _ring_wkb(ring: np.ndarray) -> bytes:
    return struct.pack("<BIII", 1, 3, 1, len(ring)) + np.ascontiguousarray(ring, dtype="<f8").tobytes()


def _outline(rng, crown, down, length, width, n_vertices):
    """A perturbed teardrop/ellipse whose long axis runs downslope from the crown; star-shaped, hence always simple."""
    across = np.array([-down[1], down[0]])
    centre = crown + down * (length / 2.0)
    theta = (np.arange(n_vertices) + rng.uniform(-0.3, 0.3, n_vertices)) * (2.0 * np.pi / n_vertices)
    a, b = length / 2.0, width / 2.0
    b_theta = b * (1.0 + rng.uniform(-0.35, 0.35) * np.cos(theta))       # wider head or wider toe
    r = a * b_theta / np.sqrt((b_theta * np.cos(theta)) ** 2 + (a * np.sin(theta)) ** 2)
    for m in range(2, 8):   # m = 2 would change the aspect ratio: keep it small
        amp = rng.uniform(0.0, 0.05) if m == 2 else rng.uniform(0.0, 0.16 / math.sqrt(m - 2))
        r *= 1.0 + amp * np.cos(m * theta + rng.uniform(0, 2 * np.pi))
    r *= 1.0 + rng.normal(0.0, 0.035, n_vertices)
    pts = centre + np.outer(r * np.cos(theta), down) + np.outer(r * np.sin(theta), across)
    return np.vstack([pts, pts[:1]]), centre, r, theta


def _place_landslides(scene: _Scene, rng, n_target: int, width: int, height: int, ps: float,
                      progress: Progress) -> _Landslides:
    """Scars sourced on steep vegetated slopes, running straight downhill, not on water, not touching each other."""
    sensor = np.radians(LOOK_AZIMUTH_DEG)
    to_sensor = np.array([math.sin(sensor), math.cos(sensor)])
    w_m, h_m, margin = width * ps, height * ps, 2.0 * ps
    index = _BoxIndex(256.0 * ps)
    geoms: list = []
    rings, boxes, d_vv, d_vh, bright, regrowth = [], [], [], [], [], []
    lmin, lmax, alpha = LENGTH_RANGE_PX[0], min(LENGTH_RANGE_PX[1], 0.9 * min(width, height)), 2.2
    if lmax <= lmin:
        lmin = max(4.0, 0.3 * lmax)
    for _batch in range(60):
        missing = n_target - len(rings)
        if missing <= 0:
            break
        check_canceled(progress)
        m = max(512, 12 * missing)
        x = rng.uniform(0.0, w_m, m)
        y = -rng.uniform(0.0, h_m, m)
        cls, elev, slope, gx, gy = scene.classify_points(x, y)
        ok = (slope > MIN_SOURCE_SLOPE_DEG) & ((cls == FOREST) | (cls == GRASS))
        u = rng.uniform(0.0, 1.0, m)
        length = (lmin ** (1 - alpha) + u * (lmax ** (1 - alpha) - lmin ** (1 - alpha))) ** (1 / (1 - alpha)) * ps
        grad = np.hypot(gx, gy) + 1e-12
        dx, dy = -gx / grad, -gy / grad
        # walk the axis: steadily downhill, on land, mostly vegetated, steep in its upper half
        prev = elev
        vegetated = np.zeros(m)
        for f in (0.25, 0.5, 0.75, 1.0):
            c2, e2, s2, _, _ = scene.classify_points(x + dx * length * f, y + dy * length * f)
            ok &= (e2 < prev - 0.05 * 0.25 * length) & (c2 != WATER)
            if f <= 0.75:
                ok &= s2 > (18.0 if f <= 0.5 else 10.0)
            vegetated += (c2 == FOREST) | (c2 == GRASS) | (c2 == FIELD)
            prev = e2
        ok &= vegetated >= 3
        for i in np.flatnonzero(ok):
            if len(rings) >= n_target:
                break
            down = np.array([dx[i], dy[i]])
            ring, centre, r, theta = _outline(rng, np.array([x[i], y[i]]), down, length[i],
                                              length[i] * rng.uniform(0.15, 0.40), int(rng.integers(24, 49)))
            box = (ring[:, 0].min(), ring[:, 1].min(), ring[:, 0].max(), ring[:, 1].max())
            if box[0] < margin or box[2] > w_m - margin or box[1] < -h_m + margin or box[3] > -margin:
                continue
            grown = centre + np.outer((r * 1.1 + 3 * ps) * np.cos(theta), down) + \
                np.outer((r * 1.1 + 3 * ps) * np.sin(theta), [-down[1], down[0]])
            grown = np.vstack([grown, grown[:1]])
            gbox = (grown[:, 0].min(), grown[:, 1].min(), grown[:, 0].max(), grown[:, 1].max())
            near = index.query(gbox)
            if near:
                candidate = ogr.CreateGeometryFromWkb(_ring_wkb(grown))
                if any(candidate.Intersects(geoms[j]) for j in near):
                    continue
            idx = len(rings)
            geoms.append(ogr.CreateGeometryFromWkb(_ring_wkb(ring)))
            index.insert(box, idx)
            rings.append(ring)
            boxes.append(box)
            facing = float(np.dot(down, to_sensor))      # +1: the slope faces the sensor
            d_vv.append(float(np.clip(1.0 + 2.0 * facing + rng.uniform(-0.5, 0.5), -1.0, 3.0)))
            d_vh.append(float(rng.uniform(-4.0, -2.0)))
            bright.append(float(rng.uniform(0.85, 1.3)))
            regrowth.append(float(rng.uniform(0.0, 0.15)))
    boxes_arr = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    return _Landslides(rings, boxes_arr, np.array(d_vv, np.float32), np.array(d_vh, np.float32),
                       np.array(bright, np.float32), np.array(regrowth, np.float32))


@dataclass
class _Clouds:
    """Cloud blobs in pixel coordinates: centre (col, row), radius and radial harmonics."""

    col: np.ndarray
    row: np.ndarray
    radius: np.ndarray
    harm_amp: np.ndarray    # (n, H)
    harm_phase: np.ndarray  # (n, H)

    HALO = 1.6  # haze reaches this many radii

    def ratio(self, window: rasterio.windows.Window, edge: np.ndarray) -> np.ndarray:
        """Distance to the nearest blob centre in units of its (ragged) radius; < 1 is cloud."""
        h, w = int(window.height), int(window.width)
        out = np.full((h, w), np.inf, dtype=np.float32)
        c0, r0 = int(window.col_off), int(window.row_off)
        reach = self.radius * self.HALO
        hit = np.flatnonzero((self.col + reach > c0) & (self.col - reach < c0 + w) &
                             (self.row + reach > r0) & (self.row - reach < r0 + h))
        for i in hit:
            a0 = max(c0, int(self.col[i] - reach[i])) - c0
            a1 = min(c0 + w, int(self.col[i] + reach[i]) + 1) - c0
            b0 = max(r0, int(self.row[i] - reach[i])) - r0
            b1 = min(r0 + h, int(self.row[i] + reach[i]) + 1) - r0
            if a1 <= a0 or b1 <= b0:
                continue
            dx = (np.arange(a0, a1) + c0 + 0.5 - self.col[i])[None, :]
            dy = (np.arange(b0, b1) + r0 + 0.5 - self.row[i])[:, None]
            theta = np.arctan2(dy, dx)
            rad = np.full(theta.shape, self.radius[i])
            for k in range(self.harm_amp.shape[1]):
                rad *= 1.0 + self.harm_amp[i, k] * np.cos((k + 2) * theta + self.harm_phase[i, k])
            q = (np.hypot(dx, dy) / rad).astype(np.float32) + 0.12 * edge[b0:b1, a0:a1]
            np.minimum(out[b0:b1, a0:a1], q, out=out[b0:b1, a0:a1])
        return out


def _place_clouds(rng, fraction: float, width: int, height: int, ps: float, slides: _Landslides) -> _Clouds:
    """Blobs until their area reaches `fraction` of the scene, each placed away from the scars where possible."""
    target = -math.log(1.0 - fraction) * width * height   # blobs overlap at random: aim at their union
    r_max = max(4.0, min(45.0, min(width, height) / 6.0))
    r_min = min(12.0, r_max / 2.0)
    index = _BoxIndex(256.0)
    for i, box in enumerate(slides.boxes):   # scar boxes in pixel coordinates (col, row)
        index.insert((box[0] / ps, -box[3] / ps, box[2] / ps, -box[1] / ps), i)
    boxes = slides.boxes
    cols, rows, radii = [], [], []
    area = 0.0
    while area < target and len(radii) < 100000:
        radius = min(float(rng.uniform(r_min, r_max)), math.sqrt((target - area) / math.pi) + 2.0)
        if radius < 3.0:
            break
        reach = radius * _Clouds.HALO
        best, best_overlap = None, math.inf
        for _try in range(60):
            c, r = rng.uniform(0, width), rng.uniform(0, height)
            near = list(index.query((c - reach, r - reach, c + reach, r + reach)))
            overlap = 0.0
            if near:   # area shared by the blob's box and the scar boxes, in pixels
                b = boxes[near] / ps
                dx = np.minimum(c + reach, b[:, 2]) - np.maximum(c - reach, b[:, 0])
                dy = np.minimum(r + reach, -b[:, 1]) - np.maximum(r - reach, -b[:, 3])
                overlap = float(np.sum(np.clip(dx, 0, None) * np.clip(dy, 0, None)))
            if overlap < best_overlap:
                best, best_overlap = (c, r), overlap
            if overlap == 0.0:
                break
        cols.append(best[0])
        rows.append(best[1])
        radii.append(radius)
        area += math.pi * radius ** 2
    n = len(radii)
    return _Clouds(np.array(cols), np.array(rows), np.array(radii),
                   rng.uniform(0.0, 0.18, (n, 4)), rng.uniform(0.0, 2 * np.pi, (n, 4)))


# --------------------------------------------------------------------------------------------------------------------
# Per-window rendering


def _illumination(gx, gy, azimuth_deg, elevation_deg):
    """Topographic brightness of a non-terrain-corrected optical image: cos(incidence)/cos(sun zenith)."""
    zen, az = np.radians(90.0 - elevation_deg), np.radians(azimuth_deg)
    sun = np.array([math.sin(zen) * math.sin(az), math.sin(zen) * math.cos(az), math.cos(zen)])
    norm = np.sqrt(gx * gx + gy * gy + 1.0)
    cos_i = (-gx * sun[0] - gy * sun[1] + sun[2]) / norm
    return np.clip(0.25 + 0.75 * cos_i / sun[2], 0.12, 1.8).astype(np.float32)


def _terrain_db(gx, gy):
    """Radar brightness of slopes: foreshortened (bright) when facing the sensor, dark when facing away."""
    inc, az = np.radians(INCIDENCE_DEG), np.radians(LOOK_AZIMUTH_DEG)
    to_sensor = np.array([math.sin(inc) * math.sin(az), math.sin(inc) * math.cos(az), math.cos(inc)])
    norm = np.sqrt(gx * gx + gy * gy + 1.0)
    cos_loc = np.clip((-gx * to_sensor[0] - gy * to_sensor[1] + to_sensor[2]) / norm, 1e-3, 1.0)
    tan_loc = np.sqrt(1.0 - cos_loc ** 2) / cos_loc
    return np.clip(10.0 * np.log10(math.tan(inc) / np.maximum(tan_loc, 1e-3)), -14.0, 7.0).astype(np.float32)


def _s2_reflectance(rng, base, illum, texture, scar=None, soil=None, noise=0.025):
    """Smooth texture, topographic illumination, scars (soil), per-pixel noise: (4, h, w) reflectance."""
    refl = base * (1.0 + 0.07 * texture)[None] * illum[None]
    if scar is not None:
        refl = np.where(scar[None], soil, refl)
    refl *= 1.0 + noise * rng.standard_normal(refl.shape, dtype=np.float32)
    refl += 0.002 * rng.standard_normal(refl.shape, dtype=np.float32)
    return refl


def _to_dn(refl, cloud):
    dn = np.clip(np.rint(refl * 10000.0), 1, 10000).astype(np.uint16)
    dn[:, cloud] = 0
    return dn


def _speckled_db(rng, sigma_db, nesz_db):
    """dB of speckled intensity: Gamma(L, 1/L) multiplicative noise in linear power, noise floor added."""
    power = 10.0 ** (sigma_db / 10.0) + 10.0 ** (nesz_db / 10.0)
    power *= rng.standard_gamma(LOOKS, power.shape, dtype=np.float32) / LOOKS
    return (10.0 * np.log10(power)).astype(np.float32)


def _render_window(scene: _Scene, slides: _Landslides, clouds: dict, rng, window, transform, ps):
    """All layers of one window: dict of name → array."""
    h, w = int(window.height), int(window.width)
    x = (np.arange(w) + window.col_off + 0.5) * ps
    y = -(np.arange(h) + window.row_off + 0.5) * ps
    raw, elev, gx, gy, axis_distance = scene.terrain.grid(x, y)
    slope = np.degrees(np.arctan(np.hypot(gx, gy)))
    cover = scene.cover.grid(x, y)
    cls = scene.classify(raw, slope, cover, axis_distance)

    # truth: rasterise exactly the outlines touching this window, with their 1-based ids
    win_tf = rasterio.windows.transform(window, transform)
    x0, y1 = x[0] - ps / 2, y[0] + ps / 2
    x1, y0 = x[-1] + ps / 2, y[-1] - ps / 2
    ids = np.zeros((h, w), dtype=np.int32)
    if len(slides):
        b = slides.boxes
        touching = np.flatnonzero((b[:, 0] < x1) & (b[:, 2] > x0) & (b[:, 1] < y1) & (b[:, 3] > y0))
        if touching.size:
            ox, oy = transform.c, transform.f
            shapes = [({"type": "Polygon", "coordinates": [(slides.rings[i] + (ox, oy)).tolist()]}, int(i) + 1)
                      for i in touching]
            ids = rasterio.features.rasterize(shapes, out_shape=(h, w), transform=win_tf, fill=0,
                                              all_touched=False, dtype="int32")
    scar = ids > 0
    sid = np.maximum(ids - 1, 0)

    # optical
    x2, y2 = np.meshgrid(x, y)
    vigour, state, hedge = scene.fields.parcels(x2, y2)
    del x2, y2
    field = cls == FIELD
    cls = np.where(field & hedge, GRASS, cls)
    field &= ~hedge
    base = np.moveaxis(_REFLECTANCE[cls], -1, 0).copy()                    # (4, h, w)
    forest_like = (cls == FOREST) | (cls == GRASS)
    base[3] *= np.where(forest_like, 1.0 + 0.12 * cover, 1.0).astype(np.float32)
    vig = vigour.astype(np.float32)
    base[3] = np.where(field, base[3] * (0.7 + 0.45 * vig), base[3])
    base[:3] = np.where(field[None], base[:3] * (1.15 - 0.3 * vig)[None], base[:3])
    bare_before = field & (state < 0.10)
    harvested = field & (state >= 0.10) & (state < 0.16)
    base_pre = np.where(bare_before[None], _BARE_FIELD[:, None, None], base)
    base_post = np.where((bare_before | harvested)[None], _BARE_FIELD[:, None, None], base)
    pheno = scene.pheno.grid(x, y)
    veg = forest_like | field
    base_post[3] *= np.where(veg, 1.0 + 0.06 * pheno - 0.01, 1.0).astype(np.float32)
    base_post[:3] *= np.where(veg, 1.0 - 0.04 * pheno, 1.0).astype(np.float32)[None]

    texture = scene.texture.grid(x, y)
    texture2 = scene.texture2.grid(x, y)
    illum_pre = _illumination(gx, gy, *SUN["pre"])
    illum_post = _illumination(gx, gy, *SUN["post"])
    mix = np.clip(slides.regrowth[sid] + 0.12 * texture2, 0.0, 0.5) if len(slides) else np.zeros((h, w), np.float32)
    bright = slides.brightness[sid] if len(slides) else np.ones((h, w), np.float32)
    soil = (_SOIL[:, None, None] * (bright * (1.0 + 0.15 * texture2))[None] * (1.0 - mix)[None]
            + base_pre * mix[None]) * illum_post[None]
    pre_refl = _s2_reflectance(rng, base_pre, illum_pre, texture)
    post_refl = _s2_reflectance(rng, base_post, illum_post, texture, scar, soil)

    edge = scene.cloud_edge.grid(x, y)
    layers = {}
    for epoch, refl in (("pre", pre_refl), ("post", post_refl)):
        ratio = clouds[epoch].ratio(window, edge)
        haze = np.clip((_Clouds.HALO - ratio) / (_Clouds.HALO - 1.0), 0.0, 1.0)
        refl += (haze * 0.06)[None] * np.array([1.0, 0.95, 0.9, 0.7], np.float32)[:, None, None]
        layers[f"{epoch}_s2"] = _to_dn(refl, ratio < 1.0)

    # radar
    terrain_db = _terrain_db(gx, gy)
    sigma = np.moveaxis(_BACKSCATTER[cls], -1, 0) + terrain_db[None] + (0.8 * cover)[None]
    sigma[:, cls == WATER] = _BACKSCATTER[WATER][:, None]
    post = sigma + (0.4 * scene.moisture.grid(x, y))[None]
    if len(slides):
        post[0] = np.where(scar, post[0] + slides.d_vv[sid] + 0.8 * texture2, post[0])
        post[1] = np.where(scar, post[1] + slides.d_vh[sid] + 0.5 * texture2, post[1])
    for epoch, sig in (("pre", sigma), ("post", post)):
        layers[f"{epoch}_s1"] = np.stack([_speckled_db(rng, sig[0], _NESZ_DB[0]),
                                          _speckled_db(rng, sig[1], _NESZ_DB[1])])

    layers["dem"] = elev[None]
    layers["labels"] = scar.astype(np.uint8)[None]
    return layers


# --------------------------------------------------------------------------------------------------------------------
# Output


@contextmanager
def _fixed_ogr_date():
    """Pin the timestamp GeoPackage writes, so the same seed gives byte-identical files."""
    old = gdal.GetConfigOption("OGR_CURRENT_DATE")
    gdal.SetConfigOption("OGR_CURRENT_DATE", "2000-01-01T00:00:00.000Z")
    try:
        yield
    finally:
        gdal.SetConfigOption("OGR_CURRENT_DATE", old)


def _write_polygons(path: Path, slides: _Landslides, crs: CRS, origin) -> None:
    """The outlines as a `landslides` polygon layer (class=1, name='landslide') in the scene CRS."""
    srs = osr.SpatialReference()
    srs.ImportFromWkt(crs.to_wkt())
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    with _fixed_ogr_date():
        ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
        if ds is None:
            raise InputError(f"Cannot create GeoPackage '{path}'.")
        layer = ds.CreateLayer("landslides", srs, ogr.wkbPolygon)
        layer.CreateField(ogr.FieldDefn("class", ogr.OFTInteger))
        name = ogr.FieldDefn("name", ogr.OFTString)
        name.SetWidth(32)
        layer.CreateField(name)
        layer.CreateField(ogr.FieldDefn("area_m2", ogr.OFTReal))
        layer.StartTransaction()
        for ring in slides.rings:
            feat = ogr.Feature(layer.GetLayerDefn())
            geom = ogr.CreateGeometryFromWkb(_ring_wkb(ring + np.asarray(origin)))
            feat.SetGeometry(geom)
            feat.SetField("class", 1)
            feat.SetField("name", "landslide")
            feat.SetField("area_m2", float(geom.GetArea()))
            if layer.CreateFeature(feat) != ogr.OGRERR_NONE:
                raise OSError(errno.EIO, "writing a landslide outline failed", str(path))
        if layer.CommitTransaction() != ogr.OGRERR_NONE:
            raise OSError(errno.EIO, "saving the landslide outlines failed", str(path))
        ds = None
    check_vector_written(path, len(slides.rings), path)


SIMULATED_EVENT = FolderKind("simulated scene", "labels.gpkg", frozenset(
    [f"{n}.tif{x}" for n in ("pre_s2", "post_s2", "pre_s1", "post_s1", "dem", "labels") for x in ("", ".aux.xml")]
    + ["labels.gpkg"]))


def simulate_event(out_dir, width: int = 512, height: int = 512, seed: int = 0, pixel_size: float = 10.0,
                   crs: str = "EPSG:32632", origin: tuple[float, float] = (400000.0, 6800000.0),
                   landslide_density: float = 1.0, cloud_fraction: float = 0.03, block: int = DEFAULT_BLOCK,
                   progress: Progress | None = None) -> SimulatedEvent:
    """Write a synthetic pre/post event scene with known landslide truth into `out_dir` (see module docstring)."""
    progress = or_null(progress)
    width, height, block = int(width), int(height), int(block)
    if width < 16 or height < 16:
        raise InputError(f"A simulated scene needs at least 16×16 pixels, not {width}×{height}.")
    if not pixel_size > 0:
        raise InputError(f"Pixel size must be positive, not {pixel_size}.")
    if landslide_density < 0:
        raise InputError(f"Landslide density must be zero or more, not {landslide_density}.")
    if not 0.0 <= cloud_fraction <= 0.5:
        raise InputError(f"Cloud fraction must be between 0 and 0.5, not {cloud_fraction}.")
    if block < 16:
        raise InputError(f"Block size must be at least 16 pixels, not {block}.")
    try:
        crs_obj = CRS.from_user_input(crs)
    except Exception as exc:  # rasterio raises CRSError with a terse message
        raise InputError(f"'{crs}' is not a coordinate reference system GDAL knows ({exc}).") from None
    if not crs_obj.is_projected:
        raise InputError(f"The simulated scene needs a projected CRS in metres; '{crs}' is not projected.")

    out = Path(out_dir)
    refuse_unsafe_target(out.absolute(), is_dir=True, parameter="OUTPUT_FOLDER", kind=SIMULATED_EVENT)
    transform = affine.Affine.translation(float(origin[0]), float(origin[1])) * affine.Affine.scale(pixel_size,
                                                                                                    -pixel_size)
    rng = np.random.default_rng(seed)
    scene = _draw_scene(rng, (width * pixel_size, height * pixel_size))
    n_target = int(round(landslide_density * width * height / 250000.0 * LANDSLIDES_PER_250K_PX))
    if landslide_density > 0:
        n_target = max(n_target, 3)
    slides = _place_landslides(scene, rng, n_target, width, height, pixel_size, progress)
    progress.log(f"Placed {len(slides)} of {n_target} landslides.")
    clouds = {"post": _place_clouds(rng, cloud_fraction, width, height, pixel_size, slides),
              "pre": _place_clouds(rng, cloud_fraction / 3.0, width, height, pixel_size, slides)}
    progress.set_progress(5.0)

    names = ("pre_s2", "post_s2", "pre_s1", "post_s1", "dem", "labels")
    grid = dict(width=width, height=height, crs=crs_obj, transform=transform)
    specs = {
        "pre_s2": dict(dtype="uint16", descriptions=S2_BANDS, nodata=0, tags={"EPOCH": "pre", "SENSOR": "S2"}),
        "post_s2": dict(dtype="uint16", descriptions=S2_BANDS, nodata=0, tags={"EPOCH": "post", "SENSOR": "S2"}),
        "pre_s1": dict(dtype="float32", descriptions=S1_BANDS, nodata=float("nan"),
                       tags={"EPOCH": "pre", "SENSOR": "S1", "UNITS": "dB"}),
        "post_s1": dict(dtype="float32", descriptions=S1_BANDS, nodata=float("nan"),
                        tags={"EPOCH": "post", "SENSOR": "S1", "UNITS": "dB"}),
        "dem": dict(dtype="float32", descriptions=("elevation",), nodata=float("nan"), tags={"UNITS": "m"}),
        "labels": dict(dtype="uint8", descriptions=("label",), nodata=255,
                       tags={"CLASSES": "0=not landslide,1=landslide"}),
    }
    common_tags = {"SIMULATED": "landslide_mapper.core.simulate", "SEED": seed}
    # The scene appears as a whole folder or not at all; it replaces only an earlier simulated scene.
    with ExitStack() as stack:
        # a bounded block cache keeps memory flat for any scene size; compression uses every core
        stack.enter_context(raster.bounded_gdal_cache(GDAL_NUM_THREADS="ALL_CPUS"))
        folder = stack.enter_context(atomic_output(out, is_dir=True, kind=SIMULATED_EVENT))
        _write_polygons(folder / "labels.gpkg", slides, crs_obj, (transform.c, transform.f))
        dsts = {}
        for name, spec in specs.items():
            tags = {**common_tags, **spec.pop("tags")}
            dsts[name] = stack.enter_context(create_raster(folder / f"{name}.tif", **grid, **spec, tags=tags))
        n_windows = count_windows(width, height, block)
        for i, window in enumerate(block_windows(width, height, block)):
            check_canceled(progress)
            layers = _render_window(scene, slides, clouds, rng, window, transform, pixel_size)
            for name, dst in dsts.items():
                dst.write(layers[name], window=window)
            progress.set_progress(5.0 + 95.0 * (i + 1) / n_windows)

    paths = {name: out / f"{name}.tif" for name in names}
    return SimulatedEvent(pre_s2=paths["pre_s2"], post_s2=paths["post_s2"], pre_s1=paths["pre_s1"],
                          post_s1=paths["post_s1"], dem=paths["dem"], labels_raster=paths["labels"],
                          labels_vector=out / "labels.gpkg", width=width, height=height,
                          crs=crs_obj.to_string(), transform=transform, n_landslides=len(slides))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m landslide_mapper.core.simulate",
                                     description="Write a synthetic landslide event scene with known truth.")
    parser.add_argument("out_dir")
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pixel-size", type=float, default=10.0)
    parser.add_argument("--crs", default="EPSG:32632")
    parser.add_argument("--density", type=float, default=1.0, help="landslide density multiplier (1 ≈ 25 per 500²)")
    parser.add_argument("--cloud-fraction", type=float, default=0.03)
    parser.add_argument("--block", type=int, default=DEFAULT_BLOCK)
    args = parser.parse_args(argv)
    try:
        event = simulate_event(args.out_dir, width=args.width, height=args.height, seed=args.seed,
                               pixel_size=args.pixel_size, crs=args.crs, landslide_density=args.density,
                               cloud_fraction=args.cloud_fraction, block=args.block, progress=PrintProgress())
    except InputError as exc:
        parser.error(str(exc))
    print(f"Wrote {event.width}×{event.height} scene with {event.n_landslides} landslides to "
          f"{os.path.abspath(args.out_dir)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
