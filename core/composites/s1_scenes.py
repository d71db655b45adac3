"""Sentinel-1 scenes: polarisations, units (linear or dB) and orbit direction."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import raster
from ...common.errors import InputError
from ..stack import source_band_names
from .shared import decimated_sample


S1_UNITS = ("auto", "linear", "dB")


ORBITS = ("both", "ascending", "descending")


_ORBIT_TAGS = ("ORBIT_DIRECTION", "ORBITPROPERTIES_PASS", "ORBIT_PASS", "PASS", "PASS_DIRECTION", "FLIGHT_DIRECTION")


_ORBIT_WORDS = {"asc": "ascending", "ascending": "ascending", "desc": "descending", "dsc": "descending",
                "descending": "descending"}


@dataclass(eq=False)
class S1Scene:
    path: str
    bands: dict[str, int]  # "VV"/"VH" → 1-based band index
    orbit: str | None      # "ascending", "descending" or None (unknown)
    units: str             # "linear" or "dB"

    @property
    def label(self) -> str:
        return os.path.basename(self.path)


def read_s1_scene(path: str | os.PathLike, units: str = "auto", band_names: Sequence[str] | None = None,
                  orbit: str | None = None) -> S1Scene:
    """A Sentinel-1 backscatter raster: its VV/VH bands, orbit direction (metadata, else file name) and units."""
    units = _units_name(units)
    with raster.open_raster(path) as src:
        names = source_band_names(src, path, band_names)
        bands: dict[str, int] = {}
        for i, n in enumerate(names, start=1):
            if n in ("VV", "VH"):
                bands.setdefault(n, i)
        if not bands:
            raise InputError(f"'{path}' has no VV or VH band (its bands: {', '.join(names)}); set band descriptions "
                             f"or name the bands in file order (INPUT_BANDS, e.g. VV,VH).")
        tags = {k.upper(): str(v) for k, v in src.tags().items()}
        found_orbit = orbit or _orbit_from(tags, Path(path).name)
        detected = {pol: _detect_units(src, i, names[i - 1], path, pol, units) for pol, i in bands.items()}
    if len(set(detected.values())) > 1:
        raise InputError(f"'{path}' mixes units: " + ", ".join(f"{p} looks {u}" for p, u in detected.items()) +
                         "; give one unit for all bands.")
    return S1Scene(str(path), bands, found_orbit, next(iter(detected.values())))


def _units_name(units: str) -> str:
    for u in S1_UNITS:
        if units.lower() == u.lower():
            return u
    raise InputError(f"Unknown backscatter units '{units}'; use one of {', '.join(S1_UNITS)}.")


def _orbit_from(tags: dict[str, str], filename: str) -> str | None:
    for key in _ORBIT_TAGS:
        value = tags.get(key, "").strip().lower()
        if value in _ORBIT_WORDS or value in ("a", "d"):
            return _ORBIT_WORDS.get(value, "ascending" if value == "a" else "descending")
    for token in re.split(r"[^A-Za-z]+", Path(filename).stem):
        if token.lower() in _ORBIT_WORDS:
            return _ORBIT_WORDS[token.lower()]
    return None


def _detect_units(src, index: int, name_hint: str, path, pol: str, units: str) -> str:
    """'linear' or 'dB' from band units/description, else from the values; refuse values that are neither."""
    declared = (src.units[index - 1] or "").lower() if src.units else ""
    description = (src.descriptions[index - 1] or "").lower()
    values = decimated_sample(src, index)
    if values.size == 0:
        raise InputError(f"Band {pol} of '{path}' has no valid pixel.")
    negative = float(np.mean(values < 0))
    median = float(np.median(values))
    looks = "dB" if negative > 0.5 else "linear" if median < 2.0 else None
    if units == "linear" and negative > 0.01:
        raise InputError(f"Band {pol} of '{path}' has negative values (median {median:.3g}): that is dB, not linear "
                         f"power. Set the units to dB (or auto).")
    if units == "dB" and looks == "linear" and negative == 0.0 and median < 1.0:
        raise InputError(f"Band {pol} of '{path}' has only values between 0 and {values.max():.3g} (median "
                         f"{median:.3g}): that is linear power, not dB. Set the units to linear (or auto).")
    if units != "auto":
        return units
    if "db" in declared or "decibel" in declared or description.endswith("db"):
        return "dB"
    if looks is None:
        raise InputError(f"Band {pol} of '{path}' has values around {median:.3g} with none negative: neither "
                         f"calibrated backscatter in dB (about −30…+5) nor linear power (about 0…1). Is it "
                         f"uncalibrated amplitude (DN)? Calibrate to σ⁰ (e.g. SNAP, or Earth Engine's "
                         f"S1_GRD) first.")
    return looks
