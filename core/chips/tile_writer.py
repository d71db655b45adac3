"""Fast writing of many small, same-shaped, north-up GeoTIFF tiles (training chips), plus ESRI world files.

Opening a GDAL dataset per chip costs more than the chip's pixels (about 2 ms for a 128×128 chip). All chips of one
export share size, band count, data type, CRS, pixel size, band names and nodata; only the origin and the pixels
differ. So GDAL writes one uncompressed template tile, its bytes are checked to hold the pixels as one contiguous
band-sequential run, and each chip is that template with its own origin patched into the ModelTiepoint tag and its
own pixels in place: one `writev` per file, GDAL-readable like any GeoTIFF. Where the template cannot be checked
(rotated grids, a CRS GDAL keeps in a side file) every chip is written through GDAL instead.
"""
from __future__ import annotations

import errno
import os
import struct
import uuid
from pathlib import Path
from typing import Sequence

import numpy as np

TIEPOINT_TAG = 33922  # ModelTiepointTag: (i, j, k, x, y, z) doubles


class TileWriter:
    """Writes (count, height, width) arrays of one dtype as GeoTIFF tiles at given map origins."""

    def __init__(self, *, width: int, height: int, count: int, dtype, crs, pixel_size: tuple[float, float],
                 descriptions: Sequence[str], nodata=None, metadata: dict | None = None):
        from osgeo import gdal

        gdal.UseExceptions()
        self.shape = (count, height, width)
        self.dtype = np.dtype(dtype)
        self.crs_wkt = crs.to_wkt() if hasattr(crs, "to_wkt") else str(crs)
        self.pixel_size = (float(pixel_size[0]), float(pixel_size[1]))
        self.descriptions = list(descriptions)
        self.nodata = nodata
        self.metadata = dict(metadata or {})
        self._template = self._make_template()

    # -- template -------------------------------------------------------------------------------------------
    def _gdal_dataset(self, path: str, data: np.ndarray, origin: tuple[float, float]):
        from osgeo import gdal, gdal_array

        count, height, width = self.shape
        mem = gdal.GetDriverByName("MEM").Create("", width, height, count,
                                                 gdal_array.NumericTypeCodeToGDALTypeCode(self.dtype))
        mem.SetGeoTransform((origin[0], self.pixel_size[0], 0.0, origin[1], 0.0, -self.pixel_size[1]))
        mem.SetProjection(self.crs_wkt)
        if self.metadata:
            mem.SetMetadata({k: str(v) for k, v in self.metadata.items()})
        for i in range(count):
            band = mem.GetRasterBand(i + 1)
            band.WriteArray(data[i])
            if i < len(self.descriptions):
                band.SetDescription(self.descriptions[i])
            if self.nodata is not None:
                band.SetNoDataValue(float(self.nodata))
        # One strip per band, band-sequential: the pixels of a chip are then data.tobytes() in one run.
        copy = gdal.GetDriverByName("GTiff").CreateCopy(path, mem, options=["INTERLEAVE=BAND", f"BLOCKYSIZE={height}",
                                                                             "COMPRESS=NONE", "TFW=NO"])
        copy.FlushCache()  # GDAL writes the file when the dataset is released
        del copy, mem

    def _make_template(self):
        """(prefix, suffix, tiepoint offset, byte order) of a verified template, or None to write through GDAL."""
        from osgeo import gdal

        rng = np.random.default_rng(12345)
        probe = rng.integers(0, 256, size=int(np.prod(self.shape)) * self.dtype.itemsize, dtype=np.uint8)
        probe = probe.view(self.dtype).reshape(self.shape)
        path = f"/vsimem/chip_template_{uuid.uuid4().hex}.tif"
        origin = (123456.25, 654321.75)  # distinctive values to find and verify the tiepoint
        try:
            self._gdal_dataset(path, probe, origin)
            if gdal.VSIStatL(path + ".aux.xml") is not None:
                return None  # metadata GDAL could not put in the TIFF itself: keep the slow, complete path
            f = gdal.VSIFOpenL(path, "rb")
            try:
                size = gdal.VSIStatL(path).size
                raw = bytes(gdal.VSIFReadL(1, size, f))
            finally:
                gdal.VSIFCloseL(f)
        finally:
            for p in (path, path + ".aux.xml"):
                if gdal.VSIStatL(p) is not None:
                    gdal.Unlink(p)
        pixels = probe.tobytes()
        start = raw.find(pixels)
        if start < 0 or raw.find(pixels, start + 1) >= 0:
            return None
        tie = _tiepoint_offset(raw)
        if tie is None:
            return None
        offset, order = tie
        x, y = struct.unpack_from(order + "2d", raw, offset + 24)
        if (x, y) != origin or not (offset + 48 <= start or offset >= start + len(pixels)):
            return None
        prefix, suffix = bytearray(raw[:start]), bytearray(raw[start + len(pixels):])
        if offset < start:
            return prefix, suffix, ("prefix", offset + 24), order
        return prefix, suffix, ("suffix", offset + 24 - start - len(pixels)), order

    @property
    def fast(self) -> bool:
        return self._template is not None

    # -- writing --------------------------------------------------------------------------------------------
    def write(self, path: str | os.PathLike, data: np.ndarray, origin: tuple[float, float]) -> None:
        """Write `data` (count, height, width) with its upper-left corner at map coordinates `origin`."""
        if data.shape != self.shape:
            raise ValueError(f"tile of shape {data.shape}, writer expects {self.shape}")
        data = np.ascontiguousarray(data, dtype=self.dtype)
        if self._template is None:
            self._gdal_dataset(str(path), data, origin)
            return
        prefix, suffix, (where, offset), order = self._template
        head, tail = bytes(prefix), bytes(suffix)
        patched = struct.pack(order + "2d", float(origin[0]), float(origin[1]))
        if where == "prefix":
            head = head[:offset] + patched + head[offset + 16:]
        else:
            tail = tail[:offset] + patched + tail[offset + 16:]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            pieces = [head, memoryview(data).cast("B"), tail]
            expected = sum(len(p) for p in pieces)
            written = os.writev(fd, pieces)
            if written != expected:  # a short write means the disk filled up (the next write would say ENOSPC)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        finally:
            os.close(fd)


def _tiepoint_offset(raw: bytes) -> tuple[int, str] | None:
    """Byte offset of the ModelTiepointTag values in a classic TIFF's first IFD, and the byte order."""
    if raw[:4] == b"II*\x00":
        order = "<"
    elif raw[:4] == b"MM\x00*":
        order = ">"
    else:
        return None  # BigTIFF or not a TIFF: never the case for small chips
    (ifd,) = struct.unpack_from(order + "I", raw, 4)
    (n,) = struct.unpack_from(order + "H", raw, ifd)
    for k in range(n):
        tag, typ, count, value = struct.unpack_from(order + "HHII", raw, ifd + 2 + 12 * k)
        if tag == TIEPOINT_TAG:
            return (value, order) if typ == 12 and count == 6 else None
    return None


def world_file_text(origin: tuple[float, float], pixel_size: tuple[float, float]) -> str:
    """An ESRI world file (.tfw) as ArcGIS writes it: pixel-centre origin, ten decimals."""
    a, e = pixel_size[0], -abs(pixel_size[1])
    cx, cy = origin[0] + a / 2.0, origin[1] + e / 2.0
    return "".join(f"{v:.10f}\n" for v in (a, 0.0, 0.0, e, cx, cy))


def write_text(path: str | os.PathLike, text: str) -> None:
    Path(path).write_text(text, newline="")
