"""Small rasters and packages with known answers, shared by unit, qgis and ui tests (`from support import ...`)."""
from __future__ import annotations

import numpy as np
import rasterio
from rasterio.transform import from_origin

UTM = "EPSG:32632"


def write_raster(path, data, descriptions=None, crs=UTM, transform=None, nodata=None):
    """Write a (bands, rows, cols) or (rows, cols) array as a GeoTIFF with band descriptions."""
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    transform = transform or from_origin(400000, 6800000, 10, 10)
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype=data.dtype, crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(data)
        for i, d in enumerate(descriptions or [], start=1):
            dst.set_band_description(i, d)
    return str(path)


def constant_package(path, bands, logit: float = 1.0, tile_size: int = 64, threshold: float = 0.5,
                     pixel_size=(10.0, 10.0)):
    """A real smp Unet whose head outputs the same logit everywhere: its blended prediction must be flat."""
    import torch

    from landslide_mapper.models.package import make_manifest, write_package
    from landslide_mapper.models.registry import create_model

    kwargs = {"encoder_depth": 3, "decoder_channels": [32, 16, 8]}
    net = create_model("Unet", "resnet18", len(bands), **kwargs)
    head = net.segmentation_head[0]
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.constant_(head.bias, logit)
    stats = [{"name": b, "mean": 0.0, "std": 1.0} for b in bands]
    manifest = make_manifest(
        members=[{"architecture": "Unet", "encoder": "resnet18", "model_kwargs": kwargs,
                  "weights": "weights.safetensors", "weight": 1.0}],
        input_bands=bands, band_stats=stats, tile_size=tile_size, threshold=threshold,
        classes=[{"value": 1, "name": "landslide"}], pixel_size=pixel_size)
    write_package(path, manifest, [net.state_dict()])
    return str(path)


def write_safe(folder, bands, *, date="20190715", tile="T33UUP", scl=None, cloud_probability=None,
               add_offset=0, crs=UTM, origin=(400000, 6800000), zip_it=False, extra_20m=None, level="L2A"):
    """A tiny Sentinel-2 L2A (or `level="L1C"`) .SAFE product (lossless JP2, the real folder layout), or its zip.

    `bands`: {"B04": 2-D uint16 array}; 10 m bands (B02, B03, B04, B08) go to R10m, the others to R20m at 20 m
    (give them at half the 10 m size). `scl` (20 m, uint8) goes to R20m, `cloud_probability` (20 m, uint8 0–100) to
    QI_DATA. `add_offset` is written as BOA_ADD_OFFSET (baseline 04.00 uses −1000: DN = reflectance×10⁴ + 1000).
    `extra_20m`: additional {"B04": array} written to R20m as well (readers must prefer the 10 m file).
    """
    import zipfile
    from pathlib import Path

    name = f"S2A_MSI{level}_{date}T102031_N0400_R065_{tile}_{date}T130416"
    root = Path(folder) / f"{name}.SAFE"
    granule = root / "GRANULE" / f"{level}_{tile}_A000001_{date}T102031"
    stem = f"{tile}_{date}T102031"

    def jp2(path, data, res):
        path.parent.mkdir(parents=True, exist_ok=True)
        with rasterio.open(path, "w", driver="JP2OpenJPEG", width=data.shape[1], height=data.shape[0], count=1,
                           dtype=data.dtype, crs=crs, transform=from_origin(origin[0], origin[1], res, res),
                           QUALITY=100, REVERSIBLE="YES") as dst:
            dst.write(data, 1)

    for band, data in bands.items():
        res = 10 if band in ("B02", "B03", "B04", "B08") else 20
        where = (granule / "IMG_DATA" / f"{stem}_{band}.jp2" if level == "L1C"  # L1C: native resolution, no R<res>m
                 else granule / "IMG_DATA" / f"R{res}m" / f"{stem}_{band}_{res}m.jp2")
        jp2(where, np.asarray(data, np.uint16), res)
    for band, data in (extra_20m or {}).items():
        jp2(granule / "IMG_DATA" / "R20m" / f"{stem}_{band}_20m.jp2", np.asarray(data, np.uint16), 20)
    if scl is not None:
        jp2(granule / "IMG_DATA" / "R20m" / f"{stem}_SCL_20m.jp2", np.asarray(scl, np.uint8), 20)
    if cloud_probability is not None:
        jp2(granule / "QI_DATA" / "MSK_CLDPRB_20m.jp2", np.asarray(cloud_probability, np.uint8), 20)
    prefix = "BOA_" if level == "L2A" else "RADIO_"
    offsets = "".join(f'<{prefix}ADD_OFFSET band_id="{i}">{add_offset}</{prefix}ADD_OFFSET>' for i in range(13))
    quantification = "BOA_QUANTIFICATION_VALUE" if level == "L2A" else "QUANTIFICATION_VALUE"
    (root / f"MTD_MSI{level}.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?><n1:User_Product xmlns:n1="x"><General_Info>'
        f'<Product_Image_Characteristics><QUANTIFICATION_VALUES_LIST><{quantification} unit="none">10000'
        f'</{quantification}></QUANTIFICATION_VALUES_LIST>'
        f'<{prefix}ADD_OFFSET_VALUES_LIST>{offsets if add_offset else ""}</{prefix}ADD_OFFSET_VALUES_LIST>'
        '</Product_Image_Characteristics></General_Info></n1:User_Product>')
    if not zip_it:
        return str(root)
    archive = Path(folder) / f"{name}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:
        for f in sorted(root.rglob("*")):
            if f.is_file():
                z.write(f, f.relative_to(Path(folder)).as_posix())
    return str(archive)


def write_polygons(path, rings, epsg: int = 32632, field: str | None = "class", value=1, layer: str = "truth"):
    """A GeoPackage of polygons (each ring a list of (x, y) in EPSG `epsg`), with an integer `field` set to `value`."""
    from osgeo import ogr, osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    lyr = ds.CreateLayer(layer, srs, ogr.wkbPolygon)
    if field:
        lyr.CreateField(ogr.FieldDefn(field, ogr.OFTInteger))
    for ring in rings:
        feat = ogr.Feature(lyr.GetLayerDefn())
        if field:
            feat.SetField(field, value)
        closed = list(ring) + ([ring[0]] if tuple(ring[0]) != tuple(ring[-1]) else [])
        feat.SetGeometry(ogr.CreateGeometryFromWkt("POLYGON((" + ",".join(f"{x} {y}" for x, y in closed) + "))"))
        lyr.CreateFeature(feat)
    ds = None
    return str(path)


def learnable_scene(folder, height: int = 192, width: int = 256, seed: int = 3, n_blobs: int = 40):
    """(stack path, label raster path): landslide blobs with a dNDVI drop and a VV increase, plus noise.

    Bands pre_VV, post_VV, dNDVI; a network (or a pixel classifier) can learn it in a few epochs.
    """
    from pathlib import Path

    folder = Path(folder)
    rng = np.random.default_rng(seed)
    labels = np.zeros((height, width), np.uint8)
    for _ in range(n_blobs):
        r, c = rng.integers(0, height - 12), rng.integers(0, width - 12)
        labels[r:r + rng.integers(4, 12), c:c + rng.integers(4, 12)] = 1
    pre_vv = rng.normal(-8, 1, (height, width))
    post_vv = pre_vv + rng.normal(0, 0.5, (height, width)) + 3.0 * labels
    dndvi = rng.normal(0, 0.05, (height, width)) - 0.5 * labels
    stack = write_raster(folder / "stack.tif", np.stack([pre_vv, post_vv, dndvi]).astype(np.float32),
                         ["pre_VV", "post_VV", "dNDVI"], nodata=np.nan)
    return stack, write_raster(folder / "labels.tif", labels, ["label"])


def export_learnable_chips(folder):
    """Chips (32 px, blocked split) of `learnable_scene` in `folder`; returns (chip folder, stack path)."""
    from landslide_mapper.core.chips import Sampling, SplitOptions, export_chips

    stack, labels = learnable_scene(folder)
    export_chips(
        stack,
        labels,
        folder / "chips",
        tile_size=32,
        sampling=Sampling(stride=32),
        splits=SplitOptions(block=64, validation_fraction=0.25),
    )
    return folder / "chips", stack


# Prepended to the scripts that check, in a fresh Python, that the plugin works where torch is not installed.
BLOCK_TORCH = r"""
import importlib.abc, sys
BLOCKED = {"torch", "torchvision", "segmentation_models_pytorch", "safetensors", "timm"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
sys.meta_path.insert(0, Block())
"""
