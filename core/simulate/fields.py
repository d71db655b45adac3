"""The scene's analytic fields: terrain, valleys, land cover and the waves that make them look natural."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Land-cover classes (internal; only the landslide label is written out).
WATER, FIELD, GRASS, FOREST, ROCK = 0, 1, 2, 3, 4


@dataclass
class Waves:
    """A sum of plane waves Σ a·cos(kx·x + ky·y + φ): smooth, seamless, cheap to evaluate on any window."""

    kx: np.ndarray
    ky: np.ndarray
    amp: np.ndarray
    phase: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, n: int, wavelengths: tuple[float, float], std: float,
             exponent: float = 1.0) -> "Waves":
        """Random directions and phases, log-uniform wavelengths (m), amplitude ∝ wavelength^exponent, total `std`."""
        lam = np.exp(rng.uniform(np.log(wavelengths[0]), np.log(wavelengths[1]), n))
        direction = rng.uniform(0.0, np.pi, n)
        k = 2.0 * np.pi / lam
        amp = lam ** exponent * rng.uniform(0.6, 1.4, n)
        amp *= std / np.sqrt(np.sum(amp ** 2) / 2.0)
        return cls(k * np.cos(direction), k * np.sin(direction), amp, rng.uniform(0.0, 2.0 * np.pi, n))

    def plus(self, other: "Waves") -> "Waves":
        return Waves(*(np.concatenate([a, b]) for a, b in zip(
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

    relief: Waves
    tilt: Waves
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
        return hash01(i, j, self.salt), hash01(i, j, self.salt + 1), hedge


def hash01(i: np.ndarray, j: np.ndarray, salt: int) -> np.ndarray:
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
class Scene:
    """Every seeded ingredient of a scene, drawn once before any window is computed."""

    terrain: _Terrain
    cover: Waves      # forest/grass patchiness (std 1)
    texture: Waves    # fine texture (std 1)
    texture2: Waves   # second fine texture, decorrelated (std 1)
    pheno: Waves      # smooth natural change between dates (std 1)
    moisture: Waves   # smooth soil-moisture change between dates (std 1)
    cloud_edge: Waves  # ragged cloud edges (std 1)
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


def draw_scene(rng: np.random.Generator, extent: tuple[float, float]) -> Scene:
    """All seeded fields; `extent` (width, height in m) only places the main valley through the scene."""
    sigma = 280.0
    relief = Waves.draw(rng, 24, (1000.0, 6000.0), sigma, exponent=1.5)
    detail = Waves.draw(rng, 32, (150.0, 1000.0), 0.012 * sigma, exponent=1.3)
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
    terrain = _Terrain(relief=relief, tilt=Waves.draw(rng, 3, (15000.0, 40000.0), 25.0), valley=valley, sigma=sigma,
                       floor=-1.0 * sigma, softness=0.04 * sigma, base=float(rng.uniform(1300.0, 1700.0)))
    fields = _Fields(angle=float(rng.uniform(0, np.pi)), size=(float(rng.uniform(150, 300)),
                                                                float(rng.uniform(100, 200))),
                     salt=int(rng.integers(0, 2 ** 31)))
    return Scene(
        terrain=terrain,
        cover=Waves.draw(rng, 32, (200.0, 3000.0), 1.0, exponent=0.7),
        texture=Waves.draw(rng, 16, (40.0, 300.0), 1.0, exponent=0.5),
        texture2=Waves.draw(rng, 16, (30.0, 200.0), 1.0, exponent=0.5),
        pheno=Waves.draw(rng, 8, (500.0, 4000.0), 1.0),
        moisture=Waves.draw(rng, 8, (500.0, 4000.0), 1.0),
        cloud_edge=Waves.draw(rng, 10, (100.0, 600.0), 1.0),
        fields=fields,
    )
