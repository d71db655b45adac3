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
