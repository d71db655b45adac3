"""Sentinel-2 acquisitions: where each band is (SAFE folders and zips, band folders, GeoTIFFs), in which scale, on
which date.
"""
from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import raster
from ...common.errors import InputError
from ..stack import S2_BANDS, catalogue_name, source_band_names
from .shared import RASTER_SUFFIXES, decimated_sample


DEFAULT_SCL_MASK = (3, 8, 9, 10, 11)  # cloud shadow, cloud medium / high probability, thin cirrus, snow


SCL_CLASSES = {0: "no data", 1: "saturated or defective", 2: "dark area", 3: "cloud shadow", 4: "vegetation",
               5: "not vegetated", 6: "water", 7: "unclassified", 8: "cloud, medium probability",
               9: "cloud, high probability", 10: "thin cirrus", 11: "snow or ice"}


S2_METHODS = ("greenest", "median", "percentile")


_CLOUD_PROBABILITY = re.compile(r"CLDPRB|cloud.?prob|probability|s2cloudless", re.I)


_DATE = re.compile(r"(?<!\d)(20\d{6})(?:T\d{6})?(?!\d)")


@dataclass
class BandFile:
    """One band of one acquisition: a GDAL path (maybe /vsizip/...), a 1-based band index and its scale."""

    path: str
    index: int = 1
    offset: float = 0.0  # added to the digital number (processing baseline ≥ 04.00: −1000)
    scale: float = 1.0   # multiplies (DN + offset) into reflectance ×10⁴
    resolution: float = 0.0


@dataclass
class S2Acquisition:
    """One Sentinel-2 acquisition as found on disk: catalogue band name → file, plus SCL and cloud probability."""

    source: str
    bands: dict[str, BandFile]
    scl: BandFile | None = None
    cloud_probability: BandFile | None = None
    date: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return os.path.basename(os.path.normpath(self.source))


def read_s2_acquisition(path: str | os.PathLike, band_names: Sequence[str] | None = None) -> S2Acquisition:
    """Find the bands of one acquisition: a .SAFE folder (or its MTD_MSI*.xml), a zipped SAFE, a folder of
    single-band rasters named by band (B02.tif, T33UUP_..._B04_10m.jp2), or a multi-band raster whose band
    descriptions (or `band_names`) name the bands."""
    p = Path(path)
    if p.is_file() and p.suffix.lower() == ".xml" and p.name.upper().startswith("MTD_MSI"):
        p = p.parent
    if not p.exists():
        raise InputError(f"Sentinel-2 input '{path}' does not exist.")
    if p.is_dir():
        if (p / "GRANULE").is_dir() or p.suffix.upper() == ".SAFE":
            members = [str(f.relative_to(p)).replace(os.sep, "/") for f in p.rglob("*") if f.is_file()]
            return _safe(str(p), members, lambda m: str(p / m), lambda m: (p / m).read_text(errors="replace"))
        return _band_folder(p)
    if p.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(p) as z:
                members = [n for n in z.namelist() if not n.endswith("/")]
        except zipfile.BadZipFile:
            raise InputError(f"'{p}' is not a readable zip file.") from None

        def read_text(member):
            with zipfile.ZipFile(p) as z:
                return z.read(member).decode("utf-8", errors="replace")

        return _safe(str(p), members, lambda m: f"/vsizip/{p.resolve()}/{m}", read_text)
    return _raster_file(p, band_names)


_SAFE_BAND = re.compile(r"^(.*?)GRANULE/([^/]+)/IMG_DATA/(?:R(\d+)m/)?([^/]+)\.jp2$", re.I)


_SAFE_CLDPRB = re.compile(r"^(.*?)GRANULE/([^/]+)/QI_DATA/MSK_CLDPRB_(\d+)m\.(jp2|tif)$", re.I)


_RESOLUTION_SUFFIX = re.compile(r"_(\d{2})m$", re.I)


_NATIVE_RES = {"B02": 10, "B03": 10, "B04": 10, "B08": 10, "B05": 20, "B06": 20, "B07": 20, "B8A": 20, "B11": 20,
               "B12": 20, "SCL": 20, "B01": 60, "B09": 60, "B10": 60}


def _safe(source: str, members: list[str], gdal_path, read_text) -> S2Acquisition:
    """A SAFE product (folder or zip): the finest file of each band in GRANULE/<tile>/IMG_DATA[/R<res>m]."""
    found: dict[str, tuple[float, str]] = {}
    granules, prefix = set(), ""
    for m in members:
        hit = _SAFE_BAND.match(m)
        if not hit:
            continue
        stem = hit.group(4)
        name = catalogue_name(stem, loose=True)
        if name not in S2_BANDS and name != "SCL":
            continue  # TCI, AOT, WVP: not used
        prefix = hit.group(1)
        granules.add(hit.group(2))
        res_m = hit.group(3) or (_RESOLUTION_SUFFIX.search(stem).group(1) if _RESOLUTION_SUFFIX.search(stem) else None)
        res = float(res_m) if res_m else float(_NATIVE_RES.get(name, 10))
        if name not in found or res < found[name][0]:
            found[name] = (res, m)
    if not found:
        raise InputError(
            f"'{source}' is not a Sentinel-2 SAFE layout this plugin knows: no band files "
            f"GRANULE/<tile>/IMG_DATA/R10m/*_B04_10m.jp2 (L2A) or GRANULE/<tile>/IMG_DATA/*_B04.jp2 (L1C) inside.")
    if len(granules) > 1:
        raise InputError(f"'{source}' holds {len(granules)} granules ({', '.join(sorted(granules))}); give one tile "
                         f"per input (old multi-tile products: split them into one SAFE per tile).")
    offsets, quantification, notes = _safe_radiometry(members, prefix, read_text)
    bands = {}
    for name, (res, m) in found.items():
        if name == "SCL":
            continue
        offset = offsets.get(S2_BANDS.index(name), 0.0)
        bands[name] = BandFile(gdal_path(m), 1, offset, 10000.0 / quantification, res)
    scl = BandFile(gdal_path(found["SCL"][1]), 1, resolution=found["SCL"][0]) if "SCL" in found else None
    clouds = sorted((float(h.group(3)), m) for m in members if (h := _SAFE_CLDPRB.match(m)))
    cloud = BandFile(gdal_path(clouds[0][1]), 1, resolution=clouds[0][0]) if clouds else None
    date = _DATE.search(os.path.basename(os.path.normpath(source))) or _DATE.search(found[next(iter(found))][1])
    return S2Acquisition(source, bands, scl, cloud, date.group(1) if date else None, notes)


def _safe_radiometry(members: list[str], prefix: str, read_text) -> tuple[dict[int, float], float, list[str]]:
    """Per-band add-offsets (baseline ≥ 04.00 writes DN = 10⁴·reflectance + 1000) and the quantification value."""
    mtd = next((m for m in members if re.fullmatch(re.escape(prefix) + r"MTD_MSIL(1C|2A)\.xml", m)), None)
    if mtd is None:
        return {}, 10000.0, ["no MTD_MSIL*.xml: assuming reflectance ×10⁴ without offset"]
    text = read_text(mtd)
    offsets = {int(b): float(v) for b, v in
               re.findall(r'<(?:BOA|RADIO)_ADD_OFFSET band_id="(\d+)">\s*(-?[\d.]+)\s*<', text)}
    q = re.search(r"<(?:BOA_)?QUANTIFICATION_VALUE[^>]*>\s*([\d.]+)\s*<", text)
    quantification = float(q.group(1)) if q else 10000.0
    notes = [f"offset {offsets[1]:+g} removed (processing baseline ≥ 04.00)"] if offsets.get(1) else []
    return offsets, quantification, notes


def _band_folder(folder: Path) -> S2Acquisition:
    """A folder of single-band rasters, each named by its band (B02.tif, s2_B8A.jp2, T33UUP_..._SCL_20m.jp2)."""
    found: dict[str, BandFile] = {}
    cloud = None
    for f in sorted(folder.iterdir()):
        if not f.is_file() or f.suffix.lower() not in RASTER_SUFFIXES:
            continue
        if _CLOUD_PROBABILITY.search(f.stem):
            cloud = BandFile(str(f))
            continue
        name = catalogue_name(f.stem, loose=True)
        if name not in S2_BANDS and name != "SCL":
            continue
        with raster.open_raster(f) as src:
            res = raster.pixel_size(src)[0]
        if name not in found or res < found[name].resolution:
            found[name] = BandFile(str(f), 1, resolution=res)
    if not found:
        raise InputError(f"Folder '{folder}' holds no raster named like a Sentinel-2 band (e.g. B02.tif, "
                         f"T33UUP_20190715T102031_B04_10m.jp2) and is not a .SAFE product.")
    bands = {n: b for n, b in found.items() if n != "SCL"}
    acq = S2Acquisition(str(folder), bands, found.get("SCL"), cloud, _date_of(folder.name))
    _check_float_units(acq)
    return acq


def _raster_file(path: Path, band_names: Sequence[str] | None) -> S2Acquisition:
    """A multi-band raster whose band descriptions (or `band_names`) name Sentinel-2 bands, SCL, cloud probability."""
    with raster.open_raster(path) as src:
        names = source_band_names(src, path, band_names)
        res = raster.pixel_size(src)[0]
    bands, scl, cloud = {}, None, None
    for i, name in enumerate(names, start=1):
        if name in S2_BANDS:
            bands.setdefault(name, BandFile(str(path), i, resolution=res))
        elif name == "SCL":
            scl = BandFile(str(path), i, resolution=res)
        elif _CLOUD_PROBABILITY.search(name):
            cloud = BandFile(str(path), i, resolution=res)
    if not bands:
        raise InputError(f"'{path}' has no band named like a Sentinel-2 band (its bands: {', '.join(names)}); set "
                         f"band descriptions (B02, B03, B04, B08 …) or name the bands in file order (INPUT_BANDS).")
    acq = S2Acquisition(str(path), bands, scl, cloud, _date_of(path.name))
    _check_float_units(acq)
    return acq


def _date_of(name: str) -> str | None:
    m = _DATE.search(name)
    return m.group(1) if m else None


def _check_float_units(acq: S2Acquisition) -> None:
    """Floating-point reflectance may be 0–1 (rescaled to ×10⁴) or ×10⁴; anything else is refused."""
    probe_name = "B04" if "B04" in acq.bands else next(iter(acq.bands))
    probe = acq.bands[probe_name]
    with raster.open_raster(probe.path) as src:
        if np.dtype(src.dtypes[probe.index - 1]).kind != "f":
            return
        values = decimated_sample(src, probe.index)
    values = values[values != 0]
    if values.size == 0:
        return
    p99, median = float(np.percentile(values, 99)), float(np.median(values))
    if median < 0:
        raise InputError(f"Band {probe_name} of '{acq.source}' has negative values (median {median:.3g}): not "
                         f"reflectance (0–1 or ×10⁴). Is it a Sentinel-1 (dB) raster?")
    if p99 <= 1.5:
        for b in acq.bands.values():
            b.scale = 10000.0
        acq.notes.append("reflectance 0–1 rescaled to ×10⁴")
    elif median > 20000:
        raise InputError(f"Band {probe_name} of '{acq.source}' has values around {median:.0f}: not reflectance "
                         f"(expected 0–1 or 0–10000 ×10⁴).")


def parse_classes(text: str | Sequence[int]) -> list[int]:
    """SCL classes from '3, 8, 9' (or a list), each checked against the SCL legend."""
    values = text if not isinstance(text, str) else [v for v in re.split(r"[,;\s]+", text) if v]
    out = []
    for v in values:
        try:
            c = int(v)
        except ValueError:
            raise InputError(f"SCL classes are whole numbers 0–11 (e.g. 3, 8, 9, 10, 11), not '{v}'.") from None
        if c not in SCL_CLASSES:
            raise InputError(f"SCL class {c} does not exist; classes are 0–11 "
                             f"({'; '.join(f'{k} {n}' for k, n in SCL_CLASSES.items())}).")
        out.append(c)
    return out
