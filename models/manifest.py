"""A package is untrusted input: its zip and its model.json are checked here, without PyTorch, before anything is used.

A `.lmpkg` may come from anyone. Before an entry is read, the zip's entry table must keep within fixed limits
(entry count, each entry's declared uncompressed size, no unsafe paths, no pickle files, no nested archives), and
entries are read through a bounded reader, so a header that lies cannot inflate past the cap. model.json is then
checked against one schema (`validate_manifest`): types, finite numbers, ranges, band names, class table, ensemble
members, and the architecture keyword arguments a package may set (an allow-list per architecture: nothing that
names files, URLs or callables). The model card (`read_manifest`) and `models.package.read_package` (package_info,
predict) both go through `open_archive` + `load_manifest`, so they accept and refuse exactly the same packages.
"""
from __future__ import annotations

import json
import math
import os
import re
import struct
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterator

from ..common.errors import InputError

MANIFEST = "model.json"
SCHEMA_VERSION = 1
TASK = "binary_segmentation"  # one output channel: landslide probability (the default)
MULTICLASS_TASK = "multiclass_segmentation"  # one output channel per class of the class table (softmax)
TASKS = (TASK, MULTICLASS_TASK)
PIXEL_BASELINE = "pixel_baseline"  # member "kind" of a per-pixel tree classifier (models/forest.py)

# ---------------------------------------------------------------------------------------------- zip limits
MAX_ENTRIES = 256  # model.json + one weights file per member, with room to spare
MAX_CENTRAL_DIRECTORY = 1 << 20  # bytes of the zip's entry table (bounds the memory spent listing it)
MAX_MANIFEST_BYTES = 4 << 20  # model.json, uncompressed (a long training history is ~0.3 MB)
MAX_ENTRY_BYTES = 2 << 30  # any other entry (a weights file), uncompressed
MAX_TOTAL_BYTES = 4 << 30  # all entries together, uncompressed
MAX_ENTRY_NAME = 255
PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".bin", ".ckpt", ".npy", ".npz", ".joblib")
ARCHIVE_SUFFIXES = (".zip", ".lmpkg", ".gz", ".tgz", ".tar", ".bz2", ".tbz2", ".xz", ".txz", ".lzma", ".zst",
                    ".7z", ".rar", ".jar", ".whl", ".egg")
READABLE_COMPRESSION = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError, OverflowError,
               struct.error, NotImplementedError, RuntimeError)

# ---------------------------------------------------------------------------------------------- schema limits
MAX_BANDS = 256
MAX_BAND_NAME = 64
MAX_MEMBERS = 64
MAX_CLASSES = 256
MIN_TILE, MAX_TILE = 32, 8192  # prediction tiles are multiples of 32 px
MAX_CHANNELS = 2048  # any channel count in model_kwargs
MAX_STAT = 1e30  # normalisation statistics must stay finite in float32
SHORT_TEXT = 128
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")  # encoder names: no ':' '/' (no hub or file names)


# ------------------------------------------------------------------------- architecture keyword arguments
@dataclass(frozen=True)
class Int:
    lo: int
    hi: int

    def accepts(self, v) -> bool:
        return _is_int(v) and self.lo <= v <= self.hi

    def __str__(self) -> str:
        return f"a whole number from {self.lo} to {self.hi}"


@dataclass(frozen=True)
class Ints:
    lo: int
    hi: int
    min_len: int
    max_len: int

    def accepts(self, v) -> bool:
        return (isinstance(v, list) and self.min_len <= len(v) <= self.max_len
                and all(_is_int(x) and self.lo <= x <= self.hi for x in v))

    def __str__(self) -> str:
        return (f"a list of {self.min_len} to {self.max_len} whole numbers, each from {self.lo} to {self.hi}"
                if self.min_len != self.max_len else
                f"a list of {self.min_len} whole numbers, each from {self.lo} to {self.hi}")


@dataclass(frozen=True)
class Number:
    lo: float
    hi: float

    def accepts(self, v) -> bool:
        return _is_number(v) and self.lo <= v <= self.hi

    def __str__(self) -> str:
        return f"a number from {self.lo:g} to {self.hi:g}"


@dataclass(frozen=True)
class Choice:
    values: tuple

    def accepts(self, v) -> bool:  # by type too: true is not 1, 16.0 is not 16
        return any(type(v) is type(c) and v == c for c in self.values)

    def __str__(self) -> str:
        return "one of " + ", ".join(_show(c) for c in self.values)


_CHANNELS = Int(1, MAX_CHANNELS)
_DEPTH = Int(1, 5)
_LADDER = Ints(1, MAX_CHANNELS, 1, 5)  # U-Net-like decoders: one channel count per encoder level
_NORM = Choice((True, False, "batchnorm", "identity", "layernorm", "instancenorm", "inplace"))
_INTERPOLATION = Choice(("nearest", "bilinear", "bicubic", "area", "nearest-exact"))
_BOOL = Choice((True, False))
_DROPOUT = Number(0.0, 1.0)
_UPSAMPLING = Int(1, 32)
_ATROUS = Ints(1, 64, 3, 3)

# What a package may set per architecture (segmentation_models_pytorch 0.6 keyword names, and ResUNet's own).
# Everything else is refused, notably encoder_weights (a file to open), activation (a callable), aux_params,
# in_channels and classes (set from the manifest), and anything the encoder would receive through **kwargs.
MODEL_KWARGS: dict[str, dict[str, object]] = {
    "Unet": {"encoder_depth": _DEPTH, "decoder_channels": _LADDER, "decoder_use_norm": _NORM,
             "decoder_attention_type": Choice((None, "scse")), "decoder_interpolation": _INTERPOLATION},
    "UnetPlusPlus": {"encoder_depth": _DEPTH, "decoder_channels": _LADDER, "decoder_use_norm": _NORM,
                     "decoder_attention_type": Choice((None, "scse")), "decoder_interpolation": _INTERPOLATION},
    "MAnet": {"encoder_depth": _DEPTH, "decoder_channels": _LADDER, "decoder_use_norm": _NORM,
              "decoder_pab_channels": _CHANNELS, "decoder_interpolation": _INTERPOLATION},
    "Linknet": {"encoder_depth": _DEPTH, "decoder_use_norm": _NORM},
    "FPN": {"encoder_depth": _DEPTH, "decoder_pyramid_channels": _CHANNELS,
            "decoder_segmentation_channels": _CHANNELS, "decoder_merge_policy": Choice(("add", "cat")),
            "decoder_dropout": _DROPOUT, "decoder_interpolation": _INTERPOLATION, "upsampling": _UPSAMPLING},
    "PSPNet": {"encoder_depth": _DEPTH, "psp_out_channels": _CHANNELS, "decoder_use_norm": _NORM,
               "psp_dropout": _DROPOUT, "upsampling": _UPSAMPLING},
    "PAN": {"encoder_depth": _DEPTH, "encoder_output_stride": Choice((16, 32)), "decoder_channels": _CHANNELS,
            "decoder_interpolation": _INTERPOLATION, "upsampling": _UPSAMPLING},
    "DeepLabV3": {"encoder_depth": _DEPTH, "encoder_output_stride": Choice((8, 16)), "decoder_channels": _CHANNELS,
                  "decoder_atrous_rates": _ATROUS, "decoder_aspp_separable": _BOOL,
                  "decoder_aspp_dropout": _DROPOUT, "upsampling": _UPSAMPLING},
    "DeepLabV3Plus": {"encoder_depth": _DEPTH, "encoder_output_stride": Choice((8, 16)),
                      "decoder_channels": _CHANNELS, "decoder_atrous_rates": _ATROUS,
                      "decoder_aspp_separable": _BOOL, "decoder_aspp_dropout": _DROPOUT,
                      "upsampling": _UPSAMPLING},
    "ResUNet": {"filters": Ints(1, MAX_CHANNELS, 2, 8), "deep_supervision": _BOOL},
}
NETWORK_ARCHITECTURES = tuple(MODEL_KWARGS)  # = models.registry.ARCHITECTURES (a unit test keeps them equal)
PIXEL_ARCHITECTURES = ("RandomForest", "CART")  # = models.forest.FOREST_ARCHITECTURES
OWN_ENCODER = {"ResUNet"}  # networks that ignore `encoder`
WHY_REFUSED = {"encoder_weights": "it would make the plugin open a file the package names",
               "activation": "it can name a callable",
               "aux_params": "it changes what the network returns"}


# ---------------------------------------------------------------------------------------------- reading
def read_manifest(path: str | os.PathLike) -> dict:
    """The checked model.json of a .lmpkg (no weights read, no torch), or an InputError naming file and field."""
    with open_archive(path) as zf:
        return load_manifest(zf, Path(path).name)


@contextmanager
def open_archive(path: str | os.PathLike) -> Iterator[zipfile.ZipFile]:
    """The package's zip, opened only once its entry table keeps within the limits (nothing is read before)."""
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise InputError(f"Model package '{path}' does not exist.")
    not_zip = f"'{name}' is not a Landslide Mapper model package (.lmpkg is a zip file)."
    try:
        with open(path, "rb") as f:
            _check_end_record(f, name, not_zip)
        zf = zipfile.ZipFile(path)
    except InputError:
        raise
    except OSError as exc:  # unreadable file, or offsets in the zip that point nowhere
        raise InputError(f"Model package '{name}' cannot be read ({exc}).") from None
    except _ZIP_ERRORS as exc:
        raise InputError(f"{not_zip[:-1]}; its zip structure is damaged ({exc}).") from None
    with zf:
        _check_entries(zf, name)
        yield zf


def read_entry(zf: zipfile.ZipFile, entry: str, limit: int, name: str) -> bytes:
    """An entry's bytes, never more than `limit` whatever its header claims; damage is an InputError."""
    info = zf.getinfo(entry)
    if info.file_size > limit:
        raise InputError(f"Model package '{name}': entry '{entry}' declares {info.file_size:,} bytes uncompressed; "
                         f"an entry may hold at most {limit:,}. Refusing to read it.")
    try:
        with zf.open(info) as f:
            data = f.read(limit + 1)
    except _ZIP_ERRORS as exc:
        raise InputError(f"Model package '{name}': entry '{entry}' is damaged and cannot be read ({exc}).") from None
    if len(data) != info.file_size:
        raise InputError(f"Model package '{name}': entry '{entry}' holds a different amount of data than its "
                         f"header declares; the zip is damaged or forged.")
    return data


def load_manifest(zf: zipfile.ZipFile, name: str) -> dict:
    """model.json of an open package, parsed and checked, with every member's weights present in the zip."""
    raw = read_entry(zf, MANIFEST, MAX_MANIFEST_BYTES, name)
    try:
        manifest = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        detail = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
        raise InputError(f"{MANIFEST} in '{name}' is not valid JSON: {detail}") from None
    validate_manifest(manifest, name)
    entries = set(zf.namelist())
    for i, member in enumerate(manifest["members"]):
        if member["weights"] not in entries:
            raise InputError(f"Model package '{name}' lists weights '{member['weights']}' (members[{i}].weights) "
                             f"that are not in the zip.")
    return manifest


def _check_end_record(f, name: str, not_zip: str) -> None:
    """Entry count and entry-table size from the zip's end record, before the entry table is parsed."""
    size = f.seek(0, os.SEEK_END)
    tail_len = min(size, 22 + 0xFFFF)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise InputError(not_zip)
    _, disk, cd_disk, n_disk, n_total, cd_size, cd_offset, _ = struct.unpack("<4s4H2LH", tail[at:at + 22])
    if 0xFFFF in (n_disk, n_total) or 0xFFFFFFFF in (cd_size, cd_offset):  # ZIP64: the true values are elsewhere
        locator = size - tail_len + at - 20
        if locator < 0:
            raise InputError(not_zip)
        f.seek(locator)
        sig, _, record, _ = struct.unpack("<4sLQL", f.read(20))
        if sig != b"PK\x06\x07" or record > size - 56:
            raise InputError(not_zip)
        f.seek(record)
        sig, _, _, _, disk, cd_disk, n_disk, n_total, cd_size, cd_offset = struct.unpack("<4sQ2H2L4Q", f.read(56))
        if sig != b"PK\x06\x06":
            raise InputError(not_zip)
    if disk or cd_disk:
        raise InputError(f"'{name}' is a multi-part zip; a model package must be a single file.")
    if max(n_disk, n_total) > MAX_ENTRIES:
        raise InputError(f"Model package '{name}' has {max(n_disk, n_total):,} entries; a package may hold at most "
                         f"{MAX_ENTRIES}. Refusing to open it.")
    if cd_size > MAX_CENTRAL_DIRECTORY:
        raise InputError(f"Model package '{name}' has an entry table of {cd_size:,} bytes (at most "
                         f"{MAX_CENTRAL_DIRECTORY:,}); refusing to open it.")


def _check_entries(zf: zipfile.ZipFile, name: str) -> None:
    """Every entry: safe relative name, not pickle, not an archive, not encrypted, within the size caps."""
    infos = zf.infolist()
    if len(infos) > MAX_ENTRIES:
        raise InputError(f"Model package '{name}' has {len(infos):,} entries; a package may hold at most "
                         f"{MAX_ENTRIES}. Refusing to open it.")
    seen, total = set(), 0
    for info in infos:
        entry = info.filename
        shown = repr(entry[:80])
        p = PurePosixPath(entry.replace("\\", "/"))
        if (not entry or len(entry) > MAX_ENTRY_NAME or p.is_absolute() or ".." in p.parts
                or re.match(r"[A-Za-z]:", entry) or any(ord(c) < 32 for c in entry)):
            raise InputError(f"Model package '{name}' contains an unsafe path {shown}; refusing to read it.")
        lower = entry.lower()
        if lower.endswith(PICKLE_SUFFIXES):
            raise InputError(f"Model package '{name}' contains {shown}, a pickle-style file that could run code; "
                             f"only safetensors weights are accepted.")
        if lower.endswith(ARCHIVE_SUFFIXES):
            raise InputError(f"Model package '{name}' contains {shown}, an archive inside the package; nested "
                             f"archives are refused.")
        if entry in seen:
            raise InputError(f"Model package '{name}' holds the entry {shown} twice; refusing an ambiguous zip.")
        seen.add(entry)
        if info.flag_bits & 0x1:
            raise InputError(f"Model package '{name}': entry {shown} is encrypted; packages are never encrypted.")
        if info.compress_type not in READABLE_COMPRESSION:
            raise InputError(f"Model package '{name}': entry {shown} uses zip compression method "
                             f"{info.compress_type}, which this plugin does not read (use deflate).")
        limit = MAX_MANIFEST_BYTES if entry == MANIFEST else MAX_ENTRY_BYTES
        if info.file_size > limit:
            raise InputError(f"Model package '{name}': entry {shown} declares {info.file_size:,} bytes "
                             f"uncompressed; {'model.json' if entry == MANIFEST else 'an entry'} may hold at most "
                             f"{limit:,}. Refusing to read it.")
        total += info.file_size
    if total > MAX_TOTAL_BYTES:
        raise InputError(f"Model package '{name}' declares {total:,} bytes uncompressed in all; a package may hold "
                         f"at most {MAX_TOTAL_BYTES:,}. Refusing to read it.")
    if MANIFEST not in seen:
        raise InputError(f"Model package '{name}' has no {MANIFEST}.")


# ---------------------------------------------------------------------------------------------- schema
def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_text(v, limit: int = SHORT_TEXT) -> bool:
    return isinstance(v, str) and 0 < len(v) <= limit and v.isprintable()


def _show(v) -> str:
    """A value as a person reads it in a message: short, never the whole of a big structure."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return repr(v[:60] + ("…" if len(v) > 60 else ""))
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    if isinstance(v, (int, float)):
        text = repr(v)
        return text if len(text) <= 40 else text[:20] + "…"
    if isinstance(v, list):
        return f"a list of {len(v)} item(s)"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


class _Schema:
    """Field checks that raise one InputError naming the package file and the field."""

    def __init__(self, name: str):
        self.name = name

    def fail(self, field: str, text: str):
        raise InputError(f"{MANIFEST} in '{self.name}': field '{field}' {text}.")

    def expect(self, ok: bool, field: str, what: str, value) -> None:
        if not ok:
            self.fail(field, f"must be {what}, not {_show(value)}")

    def obj(self, m: dict, key: str, field: str | None = None, optional: bool = True) -> dict:
        value = m.get(key)
        if value is None and optional:
            return {}
        self.expect(isinstance(value, dict), field or key, "an object", value)
        return value

    def number(self, m: dict, key: str, field: str, lo: float = -math.inf, hi: float = math.inf,
               optional: bool = True, what: str | None = None) -> None:
        if key not in m or (m[key] is None and optional):
            return
        v = m[key]
        what = what or ("a number" if (lo, hi) == (-math.inf, math.inf) else
                        f"a number ≥ {lo:g}" if hi == math.inf else f"a number between {lo:g} and {hi:g}")
        self.expect(_is_number(v) and lo <= v <= hi, field, what, v)

    def integer(self, m: dict, key: str, field: str, lo: int = 0, hi: int | None = None) -> None:
        if key not in m or m[key] is None:
            return
        v = m[key]
        what = f"a whole number ≥ {lo}" if hi is None else f"a whole number from {lo} to {hi}"
        self.expect(_is_int(v) and v >= lo and (hi is None or v <= hi), field, what, v)

    def text(self, m: dict, key: str, field: str, limit: int = SHORT_TEXT) -> None:
        if key not in m or m[key] is None:
            return
        self.expect(_is_text(m[key], limit), field, f"a short text (1 to {limit} printable characters)", m[key])


def validate_manifest(m, name: str) -> dict:
    """Check a parsed model.json against the package schema; returns it unchanged, or an InputError naming the field.

    The one place a manifest is judged: the model card, package_info and predict all rely on it.
    """
    s = _Schema(name)
    if not isinstance(m, dict):
        raise InputError(f"{MANIFEST} in '{name}' must be a JSON object, not {_show(m)}.")
    missing = [k for k in ("schema_version", "task", "input_bands", "normalization", "tile_size", "threshold",
                           "classes", "members") if k not in m]
    if missing:
        raise InputError(f"{MANIFEST} in '{name}' lacks the required field(s) {', '.join(missing)}.")
    version = m["schema_version"]
    s.expect(_is_int(version) and version >= 1, "schema_version", "a whole number ≥ 1", version)
    if version > SCHEMA_VERSION:
        raise InputError(f"'{name}' was written by a newer Landslide Mapper (schema {version}); update the plugin.")
    s.expect(isinstance(m["task"], str) and m["task"] in TASKS, "task", " or ".join(f"'{t}'" for t in TASKS),
             m["task"])
    multiclass = m["task"] == MULTICLASS_TASK

    bands = m["input_bands"]
    s.expect(isinstance(bands, list) and 1 <= len(bands) <= MAX_BANDS, "input_bands",
             f"a list of 1 to {MAX_BANDS} band names", bands)
    seen = {}
    for i, band in enumerate(bands):
        s.expect(_is_text(band, MAX_BAND_NAME) and band == band.strip(), f"input_bands[{i}]",
                 f"a band name (1 to {MAX_BAND_NAME} printable characters)", band)
        if band.lower() in seen:  # bands are matched by name, case-insensitively
            s.fail(f"input_bands[{i}]", f"repeats band '{band}' (already input_bands[{seen[band.lower()]}])")
        seen[band.lower()] = i
    s.integer(m, "in_channels", "in_channels", 1, MAX_BANDS)  # a record only: networks get len(input_bands)
    n_channels = len(m["classes"]) if multiclass and isinstance(m["classes"], list) else 1
    s.integer(m, "out_channels", "out_channels", n_channels, n_channels)

    norm = s.obj(m, "normalization", optional=False)
    lacking = [b for b in bands if not isinstance(norm.get(b), dict) or "mean" not in norm[b] or "std" not in norm[b]]
    if lacking:
        s.fail("normalization", f"has no normalisation statistics (mean and std) for band(s) {', '.join(lacking)}")
    for b in bands:
        s.number(norm[b], "mean", f"normalization.{b}.mean", -MAX_STAT, MAX_STAT, optional=False,
                 what="a finite number")
        std = norm[b]["std"]
        s.expect(_is_number(std) and 0 < std <= MAX_STAT, f"normalization.{b}.std", "a finite number > 0", std)

    tile = m["tile_size"]
    s.expect(_is_int(tile) and MIN_TILE <= tile <= MAX_TILE and tile % 32 == 0, "tile_size",
             f"a multiple of 32 pixels from {MIN_TILE} to {MAX_TILE}", tile)
    s.integer(m, "overlap", "overlap", 0, tile // 2)
    s.number(m, "threshold", "threshold", 0.0, 1.0, optional=False)

    _classes(s, m["classes"], multiclass)
    _members(s, m["members"], len(bands), n_channels)

    _record_fields(s, m)
    return m


def _record_fields(s: "_Schema", m: dict) -> None:
    """The fields a package records for people (grid, names, scores, training, provenance): types only."""
    pixel = m.get("pixel_size")
    if pixel is not None:
        s.expect(isinstance(pixel, list) and len(pixel) == 2 and all(_is_number(v) and v > 0 for v in pixel),
                 "pixel_size", "null or two numbers > 0 (x and y pixel size)", pixel)
    if m.get("crs") is not None:  # WKT may span lines
        s.expect(isinstance(m["crs"], str) and len(m["crs"]) <= 1 << 16, "crs", "null or a CRS as WKT text",
                 m["crs"])
    s.text(m, "architecture", "architecture", limit=64)
    s.text(m, "encoder", "encoder", limit=64)
    metrics = s.obj(m, "validation_metrics")
    for k, v in metrics.items():
        s.expect(v is None or isinstance(v, (int, float)) and not isinstance(v, bool), f"validation_metrics.{k}",
                 "a number or null", v)
    per_class = m.get("validation_classes")
    if per_class is not None:
        s.expect(isinstance(per_class, list) and len(per_class) <= MAX_CLASSES
                 and all(isinstance(r, dict) for r in per_class), "validation_classes",
                 "a list of per-class score objects", per_class)
        for i, row in enumerate(per_class):
            for k, v in row.items():
                if k not in ("name", "color"):
                    s.expect(v is None or isinstance(v, (int, float)) and not isinstance(v, bool),
                             f"validation_classes[{i}].{k}", "a number or null", v)
    training = s.obj(m, "training")
    s.integer(training, "best_epoch", "training.best_epoch")
    s.number(training, "seconds", "training.seconds", 0.0, optional=False)
    if "history" in training:
        s.expect(isinstance(training["history"], list), "training.history", "a list", training["history"])
    provenance = s.obj(m, "provenance")
    s.text(provenance, "created", "provenance.created", limit=64)


def _classes(s: _Schema, classes, multiclass: bool = False) -> None:
    """The class table. Multi-class: channel k of the network is classes[k]; 2 or more classes, each with a value
    0…254 (255 is nodata in class maps) and a name, colours #rrggbb (the class map's palette)."""
    s.expect(isinstance(classes, list) and len(classes) <= MAX_CLASSES, "classes",
             f"a list of at most {MAX_CLASSES} classes", classes)
    if multiclass:
        s.expect(2 <= len(classes) <= MAX_CLASSES - 1, "classes",
                 "a list of 2 or more classes (a multi-class package maps each network channel to one)", classes)
        for i, c in enumerate(classes):
            s.expect(isinstance(c, dict) and _is_int(c.get("value")) and 0 <= c["value"] <= 254
                     and _is_text(c.get("name")), f"classes[{i}]",
                     "an object with a value from 0 to 254 and a name (255 marks nodata in class maps)", c)
            color = c.get("color", c.get("colour"))
            s.expect(color is None or isinstance(color, str) and re.fullmatch(r"#[0-9A-Fa-f]{6}([0-9A-Fa-f]{2})?",
                                                                              color) is not None,
                     f"classes[{i}].color", "a colour as #rrggbb", color)
    values = {}
    for i, c in enumerate(classes):
        s.expect(isinstance(c, dict) and "value" in c, f"classes[{i}]",
                 "an object with a value (and a name and colour)", c)
        s.expect(_is_int(c["value"]) and 0 <= c["value"] <= 255, f"classes[{i}].value", "a whole number from 0 to 255",
                 c["value"])
        if c["value"] in values:
            s.fail(f"classes[{i}].value", f"repeats class value {c['value']} (already classes[{values[c['value']]}])")
        values[c["value"]] = i
        s.text(c, "name", f"classes[{i}].name")
        for key in ("color", "colour"):
            s.text(c, key, f"classes[{i}].{key}", limit=32)
        if c.get("landslide") is not None:
            s.expect(isinstance(c["landslide"], bool), f"classes[{i}].landslide", "true or false", c["landslide"])
        sources = c.get("source_classes")
        if sources is not None:
            s.expect(isinstance(sources, list) and len(sources) <= MAX_CLASSES
                     and all(_is_text(x) for x in sources), f"classes[{i}].source_classes",
                     "a list of class names", sources)


def _members(s: _Schema, members, n_bands: int, n_channels: int = 1) -> None:
    s.expect(isinstance(members, list) and 1 <= len(members) <= MAX_MEMBERS, "members",
             f"a list of 1 to {MAX_MEMBERS} networks", members)
    total_weight = 0.0
    for i, member in enumerate(members):
        f = f"members[{i}]"
        s.expect(isinstance(member, dict), f, "an object", member)
        kind = member.get("kind")
        s.expect(kind in (None, PIXEL_BASELINE), f"{f}.kind", f"absent or '{PIXEL_BASELINE}'", kind)
        arch = member.get("architecture")
        known = PIXEL_ARCHITECTURES if kind == PIXEL_BASELINE else NETWORK_ARCHITECTURES
        if not isinstance(arch, str) or arch not in known:
            shown = _show(arch)
            s.fail(f"{f}.architecture", f"names an unknown architecture {shown}; this plugin knows "
                                        f"{', '.join(known)}")
        encoder = member.get("encoder")
        if kind == PIXEL_BASELINE or arch in OWN_ENCODER:
            s.expect(encoder in (None, "") or isinstance(encoder, str) and NAME_PATTERN.fullmatch(encoder),
                     f"{f}.encoder", "null or an encoder name", encoder)
        else:
            s.expect(isinstance(encoder, str) and NAME_PATTERN.fullmatch(encoder) is not None, f"{f}.encoder",
                     "an encoder name (letters, digits, '_', '-', '.'; no paths or addresses)", encoder)
        weights = member.get("weights")
        s.expect(isinstance(weights, str) and len(weights) <= MAX_ENTRY_NAME and weights.endswith(".safetensors")
                 and len(weights) > len(".safetensors") and not weights.startswith(".") and weights.isprintable()
                 and not any(c in weights for c in "/\\:"), f"{f}.weights",
                 "a plain file name ending in .safetensors (no folders, no '..')", weights)
        s.number(member, "weight", f"{f}.weight", 0.0, 1e6)
        total_weight += 1.0 if member.get("weight") is None else member["weight"]
        s.integer(member, "out_channels", f"{f}.out_channels", n_channels, n_channels)
        kwargs = member.get("model_kwargs")
        if kwargs is not None:
            s.expect(isinstance(kwargs, dict), f"{f}.model_kwargs", "an object", kwargs)
            allowed = {} if kind == PIXEL_BASELINE else MODEL_KWARGS[arch]
            for key, value in kwargs.items():
                field = f"{f}.model_kwargs.{key}"
                if key not in allowed:
                    why = WHY_REFUSED.get(key, "")
                    may = f"it may set {', '.join(allowed)}" if allowed else "it may set none"
                    s.fail(field, f"is not a setting a package may give a {arch} network"
                                  f"{' (' + why + ')' if why else ''}; {may}")
                s.expect(allowed[key].accepts(value), field, str(allowed[key]), value)
        s.text(member, "name", f"{f}.name")
        s.text(member, "loss", f"{f}.loss", limit=64)
        s.number(member, "learning_rate", f"{f}.learning_rate", 0.0)
        if member.get("validation_f1") is not None:
            v = member["validation_f1"]
            s.expect(isinstance(v, (int, float)) and not isinstance(v, bool), f"{f}.validation_f1",
                     "a number or null", v)
        s.integer(member, "n_trees", f"{f}.n_trees")
        s.integer(member, "max_depth", f"{f}.max_depth")
    if total_weight <= 0:
        s.fail("members", "must give at least one member a weight above 0 (the ensemble is their weighted mean)")
