"""Per-window rendering of the optical and radar images, the DEM and the labels."""
from __future__ import annotations

import math

import numpy as np
import rasterio
import rasterio.features
import rasterio.windows

from .fields import FIELD, FOREST, GRASS, WATER, Scene
from .geometry import LOOK_AZIMUTH_DEG, Clouds, Landslides

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




SUN = {"pre": (155.0, 42.0), "post": (150.0, 50.0)}   # azimuth, elevation in degrees


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


def _landslide_ids(slides: Landslides, window, transform, x, y, ps) -> np.ndarray:
    """The truth of one window: the outlines touching it rasterised exactly, with their 1-based ids (0 = none)."""
    h, w = len(y), len(x)
    x0, y1 = x[0] - ps / 2, y[0] + ps / 2
    x1, y0 = x[-1] + ps / 2, y[-1] - ps / 2
    if not len(slides):
        return np.zeros((h, w), dtype=np.int32)
    b = slides.boxes
    touching = np.flatnonzero((b[:, 0] < x1) & (b[:, 2] > x0) & (b[:, 1] < y1) & (b[:, 3] > y0))
    if not touching.size:
        return np.zeros((h, w), dtype=np.int32)
    ox, oy = transform.c, transform.f
    shapes = [({"type": "Polygon", "coordinates": [(slides.rings[i] + (ox, oy)).tolist()]}, int(i) + 1)
              for i in touching]
    win_tf = rasterio.windows.transform(window, transform)
    return rasterio.features.rasterize(shapes, out_shape=(h, w), transform=win_tf, fill=0, all_touched=False,
                                       dtype="int32")


def render_window(scene: Scene, slides: Landslides, clouds: dict, rng, window, transform, ps):
    """All layers of one window: dict of name → array."""
    h, w = int(window.height), int(window.width)
    x = (np.arange(w) + window.col_off + 0.5) * ps
    y = -(np.arange(h) + window.row_off + 0.5) * ps
    raw, elev, gx, gy, axis_distance = scene.terrain.grid(x, y)
    slope = np.degrees(np.arctan(np.hypot(gx, gy)))
    cover = scene.cover.grid(x, y)
    cls = scene.classify(raw, slope, cover, axis_distance)

    ids = _landslide_ids(slides, window, transform, x, y, ps)
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
        haze = np.clip((Clouds.HALO - ratio) / (Clouds.HALO - 1.0), 0.0, 1.0)
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
