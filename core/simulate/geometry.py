"""Geometry: landslide outlines placed on steep slopes, and cloud blobs."""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np
import rasterio
import rasterio.features
import rasterio.windows
from osgeo import ogr

from ...common.progress import Progress, check_canceled
from .fields import FIELD, FOREST, GRASS, WATER, Scene

LOOK_AZIMUTH_DEG = 258.0           # ground → sensor, clockwise from north (ascending, right-looking)
MIN_SOURCE_SLOPE_DEG = 25.0


LENGTH_RANGE_PX = (20.0, 200.0)


LANDSLIDES_PER_250K_PX = 25.0


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
class Landslides:
    """Outlines (closed rings in scene-relative metres, y up) and per-slide change attributes."""

    rings: list[np.ndarray]
    boxes: np.ndarray        # (n, 4) xmin, ymin, xmax, ymax in relative metres
    d_vv: np.ndarray         # post−pre VV change in the scar (dB)
    d_vh: np.ndarray         # post−pre VH change in the scar (dB)
    brightness: np.ndarray   # soil brightness factor
    regrowth: np.ndarray     # fraction of surviving vegetation in the scar

    def __len__(self) -> int:
        return len(self.rings)


def ring_wkb(ring: np.ndarray) -> bytes:
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


def place_landslides(scene: Scene, rng, n_target: int, width: int, height: int, ps: float,
                      progress: Progress) -> Landslides:
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
                candidate = ogr.CreateGeometryFromWkb(ring_wkb(grown))
                if any(candidate.Intersects(geoms[j]) for j in near):
                    continue
            idx = len(rings)
            geoms.append(ogr.CreateGeometryFromWkb(ring_wkb(ring)))
            index.insert(box, idx)
            rings.append(ring)
            boxes.append(box)
            facing = float(np.dot(down, to_sensor))      # +1: the slope faces the sensor
            d_vv.append(float(np.clip(1.0 + 2.0 * facing + rng.uniform(-0.5, 0.5), -1.0, 3.0)))
            d_vh.append(float(rng.uniform(-4.0, -2.0)))
            bright.append(float(rng.uniform(0.85, 1.3)))
            regrowth.append(float(rng.uniform(0.0, 0.15)))
    boxes_arr = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    return Landslides(rings, boxes_arr, np.array(d_vv, np.float32), np.array(d_vh, np.float32),
                       np.array(bright, np.float32), np.array(regrowth, np.float32))


@dataclass
class Clouds:
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


def place_clouds(rng, fraction: float, width: int, height: int, ps: float, slides: Landslides) -> Clouds:
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
        reach = radius * Clouds.HALO
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
    return Clouds(np.array(cols), np.array(rows), np.array(radii),
                   rng.uniform(0.0, 0.18, (n, 4)), rng.uniform(0.0, 2 * np.pi, (n, 4)))
