"""ArcGIS Pro "Classified Tiles" training data (Export Training Data For Deep Learning): writer and reader.

Folder layout, as ArcGIS writes it:
    images/000000000000.tif (+ .tfw)            image tiles; NoData cells are 0 in every band, no nodata tag
    labels/000000000000.tif (+ .tfw, .aux.xml)  UInt16 class values, 0 = background; aux marks them Thematic
    esri_model_definition.emd    JSON: tile size, cell size + spatial reference, classes (Value, Name, Color),
                                 band names, AllTilesStats; other keys keep ArcGIS's "e.g. ..." placeholders
    esri_accumulated_stats.json  JSON: tile and feature counts per class, per-band moments (M1 mean, M2 sum of
                                 squared deviations, Num valid cells)
    map.txt                      "images\\<n>.tif labels\\<n>.tif" per tile, Windows separators
    stats.txt                    human-readable summary of the same counts
Our exports add chips.json (layout "arcgis"), stats.json and index.csv (split per tile); ArcGIS ignores them.
ArcGIS labels have no 'unknown' value, so our writer only cuts chips whose valid pixels are all labelled.
"""
from __future__ import annotations

import csv
import json
import threading
from pathlib import Path, PureWindowsPath

import numpy as np
import rasterio
from affine import Affine
from rasterio.windows import Window

from .. import raster
from .tile_writer import TileWriter, world_file_text, write_text
from .chipset import ChipSet, binary_manifest, multiclass_manifest, multiclass_table
from ..labels import IGNORE, LabelClass, hex_rgb, mark_landslide_classes, raster_window_bounds
from .splits import assign_splits
from .statistics import BandStatistics
from ...common.errors import InputError

EMD = "esri_model_definition.emd"
ACCUMULATED = "esri_accumulated_stats.json"
THEMATIC_AUX = ('<PAMDataset>\n  <Metadata>\n    <MDI key="DataType">Thematic</MDI>\n  </Metadata>\n'
                '</PAMDataset>\n')
WELL_KNOWN_BANDS = ["Red", "Green", "Blue", "Infrared", "CoastalBlue", "Yellow", "RedEdge", "ShortWaveInfrared",
                    "NearInfrared", "NearInfrared_1", "NearInfrared_2", "MidInfrared", "MidInfrared_1",
                    "MidInfrared_2", "Thermal", "Thermal_1", "Thermal_2", "Panchromatic", "PseudoRed", "PseudoGreen",
                    "PseudoBlue", "QA"]


def _dumps(obj) -> str:
    """JSON laid out like ArcGIS's: two-space indent, ' : ' between key and value, whole numbers without '.0'."""
    def tidy(v):
        if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
            return int(v)
        if isinstance(v, dict):
            return {k: tidy(x) for k, x in v.items()}
        if isinstance(v, list):
            return [tidy(x) for x in v]
        return v
    return json.dumps(tidy(obj), indent=2, separators=(",", " : "), ensure_ascii=False)


def _spatial_reference(crs) -> dict:
    epsg = crs.to_epsg() if crs is not None else None
    return {"wkid": epsg, "latestWkid": epsg} if epsg else {"wkt": crs.to_wkt() if crs is not None else ""}


# ---------------------------------------------------------------------------------------------- writer
class ArcGISLayout:
    """Writes chips the way ArcGIS Pro's Classified Tiles export does (see the module docstring)."""

    def __init__(self, folder: Path, src, win: Window, names, tile: int, classes):
        self.folder, self.src, self.win, self.tile, self.names = folder, src, win, tile, list(names)
        self.classes = [c for c in classes if 0 < c.value < IGNORE]
        self.transform = src.transform
        self.pixel = raster.pixel_size(src)
        (folder / "images").mkdir()
        (folder / "labels").mkdir()
        self.images = TileWriter(width=tile, height=tile, count=len(names), dtype="float32", crs=src.crs,
                                 pixel_size=self.pixel, descriptions=names, nodata=None)
        self.labels = TileWriter(width=tile, height=tile, count=1, dtype="uint16", crs=src.crs,
                                 pixel_size=self.pixel, descriptions=[], nodata=None)
        self.all_stats = BandStatistics(names)  # ArcGIS reports statistics over all tiles
        self.features: dict[int, dict] = {}  # chip number -> {class value: [feature areas]}
        self.lock = threading.Lock()

    def chip_id(self, k: int) -> str:
        return f"{k:012d}"

    def origin(self, row: int, col: int) -> tuple[float, float]:
        return self.transform * (self.win.col_off + col, self.win.row_off + row)

    def bounds(self, row: int, col: int):
        t = self.transform * Affine.translation(self.win.col_off + col, self.win.row_off + row)
        return raster_window_bounds(t, self.tile, self.tile)

    def accepts(self, n_valid: int, n_known: int) -> bool:
        """ArcGIS labels cannot say 'unknown': only chips whose valid pixels are all labelled are cut."""
        return n_valid == n_known

    def write_chip(self, k: int, image: np.ndarray, codes: np.ndarray, valid: np.ndarray, origin) -> None:
        from scipy import ndimage

        cid = self.chip_id(k)
        pixels = image if valid.all() else np.where(valid[None], image, np.float32(0))  # NoData: 0, as ArcGIS
        label = np.where(valid, codes, 0).astype(np.uint16)
        world = world_file_text(origin, self.pixel)
        self.images.write(self.folder / "images" / f"{cid}.tif", pixels, origin)
        write_text(self.folder / "images" / f"{cid}.tfw", world)
        self.labels.write(self.folder / "labels" / f"{cid}.tif", label[None], origin)
        write_text(self.folder / "labels" / f"{cid}.tfw", world)
        write_text(self.folder / "labels" / f"{cid}.tif.aux.xml", THEMATIC_AUX)
        area = self.pixel[0] * self.pixel[1]
        found = {}
        for c in self.classes:
            mask = label == c.value
            if mask.any():
                parts, n = ndimage.label(mask)
                found[c.value] = list(np.bincount(parts.ravel())[1:] * area)
        self.all_stats.add(k, image, valid)
        with self.lock:
            self.features[k] = found

    def finish(self, manifest: dict, band_stats: list[dict], cutter) -> None:
        n = len(cutter.index_rows)
        ids = [self.chip_id(k) for k in range(n)]
        write_text(self.folder / "map.txt", "".join(f"images\\{i}.tif labels\\{i}.tif\n" for i in ids))
        tile_stats = self.all_stats.result()
        cell = {"x": self.pixel[0], "y": self.pixel[1], "spatialReference": _spatial_reference(self.src.crs)}
        classes = [{"Value": c.value, "Name": c.name, "Color": hex_rgb(c.color)} for c in self.classes]
        bands = {"RasterCount": 1, "SensorName": "", "BandNames": self.names}
        emd = {
            "Framework": "e.g. TensorFlow or PyTorch",
            "ModelConfiguration": "e.g. UNet or FasterRCNN",
            "ModelType": "e.g. ObjectDetection or ImageClassification",
            "ModelFile": "e.g. ./trained.model",
            "Description": "e.g. which data model was trained on, when, by whom, mAP, etc",
            "ImageHeight": self.tile, "ImageWidth": self.tile,
            "ExtractBands": "e.g. [0, 1, 2]",
            "DataRange": "e.g. [0.1, 1.0] (optional)",
            "ModelPadding": "e.g. 64 (optional)",
            "BatchSize": "e.g. 8 (optional)",
            "PerProcessGPUMemoryFraction": "e.g. 0.8 (optional)",
            "MetaDataMode": "Classified_Tiles",
            "BlackenAroundFeature": False,
            "IsMultidimensional": False,
            "CropTileMode": "Fixed_Size",
            "ImageSpaceUsed": "MAP_SPACE",
            "MinCellSize": cell, "MaxCellSize": cell,
            "Classes": classes,
            "InputRastersProps": bands,
            "AllTilesStats": [{"BandName": s["name"], "Min": s["min"], "Max": s["max"], "Mean": s["mean"],
                               "StdDev": _sample_std(s)} for s in tile_stats],
            "WellKnownBandNames (FYI, these band names can be used in ExtractBands)": WELL_KNOWN_BANDS,
        }
        write_text(self.folder / EMD, _dumps(emd))
        per_image = [sum(len(v) for v in self.features[k].values()) for k in range(n)]
        per_class = {c.value: [a for k in range(n) for a in self.features[k].get(c.value, [])] for c in self.classes}
        images_with = {c.value: sum(c.value in self.features[k] for k in range(n)) for c in self.classes}
        accumulated = {
            "Version": 1, "NumBands": len(self.names), "TileSizeX": self.tile, "TileSizeY": self.tile,
            "NumClasses": len(self.classes), "NumTiles": n, "NumTilesAsDouble": float(n), "NextTileIndex": n,
            "OutputFeatures": True, "MetaDataMode": "Classified_Tiles", "MinCellSize": cell, "MaxCellSize": cell,
            "Classes": [{"ClassValue": c.value, "ClassName": c.name, "Color": hex_rgb(c.color)} for c in self.classes],
            "FeatureStats": {
                "NumClasses": len(self.classes), "NumImagesTotal": n, "NumFeaturesTotal": int(sum(per_image)),
                "NumImagesPerClass": [images_with[c.value] for c in self.classes],
                "NumFeaturesPerClass": [len(per_class[c.value]) for c in self.classes],
                "NumFeaturesPerImage": _moments(per_image),
                "FeatureAreaPerClass": [_moments(per_class[c.value]) for c in self.classes],
            },
            "InputRastersProps": bands,
            "BandStatsState": [{"Min": s["min"], "Max": s["max"], "Mean": 0, "StdDev": 0, "M1": s["mean"],
                                "M2": s["std"] ** 2 * s["count"], "Num": s["count"]} for s in tile_stats],
        }
        write_text(self.folder / ACCUMULATED, _dumps(accumulated))
        lines = [f"images = {n} *{len(self.names)}*{self.tile}*{self.tile}", "", "Class feature statistics:",
                 f"features = {sum(per_image)}",
                 f"features per image = [min = {min(per_image, default=0)}, mean = "
                 f"{(sum(per_image) / n if n else 0):.2f}, max = {max(per_image, default=0)}]",
                 f"classes = {len(self.classes)}",
                 f"{'cls name':<42}{'cls value':>9}{'images':>11}{'features':>11}{'min size':>12}{'mean size':>12}"
                 f"{'max size':>12}"]
        for c in self.classes:
            a = per_class[c.value]
            lines.append(f"{c.name:<42}{c.value:>9}{images_with[c.value]:>11}{len(a):>11}"
                         f"{min(a, default=0):>12.2f}{(sum(a) / len(a) if a else 0):>12.2f}{max(a, default=0):>12.2f}")
        write_text(self.folder / "stats.txt", "\n".join(lines) + "\n")


def _sample_std(stats: dict) -> float:
    """ArcGIS's StdDev divides by n − 1 (checked against a real export); ours by n."""
    n = stats["count"]
    return stats["std"] * (n / (n - 1)) ** 0.5 if n > 1 else 0.0


def _moments(values) -> dict:
    v = [float(x) for x in values]
    return {"Min": min(v, default=0.0), "Max": max(v, default=0.0), "Mean": sum(v) / len(v) if v else 0.0,
            "Sum": sum(v), "Count": len(v)}


# ---------------------------------------------------------------------------------------------- reader
def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise InputError(f"'{path}' is not readable JSON ({exc}).") from None


def tile_pairs(folder: Path) -> list[tuple[Path, Path]]:
    """(image, label) paths listed in map.txt (Windows or POSIX separators), else images/*.tif with labels/."""
    map_txt = folder / "map.txt"
    pairs = []
    if map_txt.exists():
        for n, line in enumerate(map_txt.read_text(encoding="utf-8-sig").splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise InputError(f"Line {n} of '{map_txt}' should name an image tile and a label tile: '{line}'.")
            pairs.append(tuple(folder.joinpath(*PureWindowsPath(p).parts) for p in parts))
    else:
        pairs = [(p, folder / "labels" / p.name) for p in sorted((folder / "images").glob("*.tif"))]
    if not pairs:
        raise InputError(f"Classified Tiles folder '{folder}' lists no tiles (map.txt is empty or missing).")
    for image, label in pairs:
        for p in (image, label):
            if not p.exists():
                raise InputError(f"Classified Tiles folder '{folder}' lists '{p.relative_to(folder)}' in map.txt, "
                                 f"but that tile is missing.")
    return pairs


def _classes(folder: Path, emd: dict, ours: dict | None) -> list[LabelClass]:
    if ours and ours.get("classes"):
        return [LabelClass(int(c["value"]), c["name"], c["color"], bool(c.get("landslide", True)))
                for c in ours["classes"] if 0 < int(c["value"]) < IGNORE]
    entries = emd.get("Classes")
    if not entries and (folder / ACCUMULATED).exists():
        entries = [{"Value": c.get("ClassValue"), "Name": c.get("ClassName"), "Color": c.get("Color")}
                   for c in _read_json(folder / ACCUMULATED).get("Classes", [])]
    out = []
    for e in entries or []:
        color = e.get("Color") or [232, 112, 42]
        out.append(LabelClass(int(e["Value"]), str(e.get("Name", e["Value"])),
                              "#{:02x}{:02x}{:02x}".format(*[int(v) for v in color[:3]])))
    return out


def _choose_landslides(classes: list[LabelClass], spec, ours: dict | None, folder: Path) -> list[LabelClass]:
    source = f"Classified Tiles folder '{folder}'"
    if spec is not None:
        return mark_landslide_classes(classes, spec, source)
    if ours:
        return classes  # our export recorded its landslide classes
    named = [c for c in classes if c.name.strip().lower() in ("landslide", "landslides")]
    if named or len(classes) == 1:
        return mark_landslide_classes(classes, [c.value for c in (named or classes)], source)
    listed = ", ".join(f"{c.value} '{c.name}'" for c in classes)
    raise InputError(f"{source} has {len(classes)} classes ({listed}); say which are landslides (class values or "
                     f"names, e.g. '2'); the others become background.")


def _usable_names(names, count: int) -> bool:
    return len(names) == count and all(names) and len({n.lower() for n in names}) == count


def classified_tiles_band_names(descriptions: set[tuple[str, ...]], emd: dict, count: int) -> list[str]:
    """Band names of a Classified Tiles folder: the tiles' own GDAL band descriptions when every tile has the same
    complete, distinct set; else the .emd's InputRastersProps.BandNames when complete and distinct (ArcGIS often
    leaves them blank); else B1…Bn. Predict matches bands by these names, so the real ones must survive."""
    if len(descriptions) == 1:
        tile_names = list(next(iter(descriptions)))
        if _usable_names(tile_names, count):
            return tile_names
    declared = [str(b).strip() for b in emd.get("InputRastersProps", {}).get("BandNames", []) or []]
    if _usable_names(declared, count):
        return declared
    return [f"B{k}" for k in range(1, count + 1)]


def read_classified_tiles(folder: str | Path, landslide_classes=None, *, max_bytes: int = 4 << 30,
                          validation_fraction: float = 0.2, split_block_size: float | None = None,
                          seed: int = 0, task: str = "binary") -> ChipSet:
    """An ArcGIS Classified Tiles folder as a ChipSet (labels 0/1/255, NaN nodata, a spatially blocked split).

    Image cells that are 0 in every band are NoData (ArcGIS writes NoData so; its accumulated statistics leave
    them out too), unless the tiles declare a nodata value. Statistics are ours if the folder has stats.json,
    else computed on the training tiles with NoData excluded.
    """
    folder = Path(folder)
    emd = _read_json(folder / EMD) if (folder / EMD).exists() else {}
    mode = str(emd.get("MetaDataMode", "Classified_Tiles"))
    if mode.lower() != "classified_tiles":
        raise InputError(f"'{folder / EMD}' describes a '{mode}' export; only 'Classified_Tiles' (pixel "
                         f"classification) can train a landslide segmentation model.")
    ours = _read_json(folder / "chips.json") if (folder / "chips.json").exists() else None
    pairs = tile_pairs(folder)
    if task == "multiclass":  # every class is learnt: channel indexes of the class table, background first
        classes = _classes(folder, emd, ours)
        table, class_lut = multiclass_table(classes)
    else:
        classes = _choose_landslides(_classes(folder, emd, ours), landslide_classes, ours, folder)
        class_lut = None
    landslide_values = [c.value for c in classes if c.landslide]
    size = (int(emd["ImageHeight"]), int(emd["ImageWidth"])) if "ImageHeight" in emd else None
    with raster.reading(pairs[0][0]), rasterio.open(pairs[0][0]) as first:
        count = first.count
        size = size or (first.height, first.width)
        crs, pixel = first.crs, raster.pixel_size(first)
    n = len(pairs)
    if n * count * size[0] * size[1] * 4 > max_bytes:
        raise InputError(f"Classified Tiles folder '{folder}' holds {n} tiles, more than fit in memory here.")
    images = np.empty((n, count) + size, dtype=np.float32)
    labels = np.empty((n,) + size, dtype=np.uint8)
    origins = np.empty((n, 2))
    descriptions = set()
    for i, (image_path, label_path) in enumerate(pairs):
        with raster.reading(image_path), rasterio.open(image_path) as src:
            if (src.height, src.width) != size or src.count != count:
                raise InputError(f"Image tile '{image_path.relative_to(folder)}' is {src.count}×{src.height}×"
                                 f"{src.width}; the folder's tiles are {count}×{size[0]}×{size[1]}.")
            descriptions.add(tuple((d or "").strip() for d in src.descriptions))
            data = raster.read_float(src, list(range(1, count + 1)))
            if all(v is None for v in src.nodatavals):
                data[:, np.all(data == 0, axis=0)] = np.nan  # ArcGIS NoData cells
            images[i] = data
            origins[i] = (src.transform.c, src.transform.f)
        with raster.reading(label_path), rasterio.open(label_path) as src:
            if (src.height, src.width) != size or src.count != 1:
                raise InputError(f"Label tile '{label_path.relative_to(folder)}' is {src.count}×{src.height}×"
                                 f"{src.width}; it must be one band of {size[0]}×{size[1]} like its image.")
            values = src.read(1)
        lab = class_lut[values] if class_lut is not None else np.isin(values, landslide_values).astype(np.uint8)
        lab[~np.all(np.isfinite(images[i]), axis=0)] = IGNORE
        labels[i] = lab
    splits = _splits(folder, pairs, origins, labels, size, pixel, validation_fraction, split_block_size, seed)
    if (folder / "stats.json").exists():
        stats = _read_json(folder / "stats.json")["bands"]
        names = list(ours["bands"]) if ours else [s["name"] for s in stats]
    else:
        names = classified_tiles_band_names(descriptions, emd, count)
        band_stats = BandStatistics(names, seed)
        for i in np.flatnonzero(splits == "train"):
            band_stats.update(images[i])
        stats = band_stats.result()
    manifest = {"format": "landslide_mapper.chips", "layout": "arcgis", "bands": names, "tile_size": size[0],
                "crs": crs.to_wkt() if crs else None, "pixel_size": list(pixel),
                "source": {"classified_tiles": str(folder)}}
    carried = multiclass_manifest(manifest, table, classes) if task == "multiclass" else \
        binary_manifest(manifest, classes)
    return ChipSet(folder, carried, stats, images, labels, splits)


def _splits(folder, pairs, origins, labels, size, pixel, validation_fraction, block_size, seed) -> np.ndarray:
    """Our recorded split, else whole blocks of tiles held out, dropping training tiles that overlap them."""
    index = folder / "index.csv"
    if index.exists():
        with open(index, newline="") as f:
            recorded = {r["id"]: r["split"] for r in csv.DictReader(f)}
        try:
            return np.array([recorded[p[0].stem] for p in pairs])
        except KeyError as exc:
            raise InputError(f"'{index}' has no split for tile {exc}.") from None
    extent = np.array([size[1] * pixel[0], size[0] * pixel[1]])
    block = float(block_size) if block_size else 2 * float(extent.max())
    centres = origins + extent * [0.5, -0.5]
    cells = np.floor((centres - centres.min(axis=0)) / block).astype(int)
    units = [tuple(c) for c in cells]
    positives = {}
    for u, lab in zip(units, labels):
        positives[u] = positives.get(u, 0) + int((lab == 1).sum())
    unit_split = assign_splits(positives, {"train": 1 - validation_fraction, "validation": validation_fraction},
                                seed)
    splits = np.array([unit_split[u] for u in units], dtype=object)
    held = splits != "train"
    for i in np.flatnonzero(~held):  # no pixel of a training tile may be in a validation tile
        overlap = np.all(np.abs(origins[held] - origins[i]) < extent - 0.5 * np.array(pixel), axis=1)
        if overlap.any():
            splits[i] = "dropped"
    return splits.astype(str)
