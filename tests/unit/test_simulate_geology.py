"""The multi-class geology scene: every class drawn, class table and names on the label raster, any block size."""
import json

import numpy as np
import rasterio
from osgeo import gdal

from landslide_mapper.core.simulate.geology import GEOLOGY_CLASSES, simulate_geology


def test_geology_scene_has_every_class_with_names_and_colours_and_is_block_invariant(tmp_path):
    a = simulate_geology(tmp_path / "a", width=160, height=128, seed=3, block=64)
    b = simulate_geology(tmp_path / "b", width=160, height=128, seed=3, block=256)
    with rasterio.open(a.labels_raster) as src:
        labels = src.read(1)
        colours = src.colormap(1)
    with rasterio.open(b.labels_raster) as src:
        assert (src.read(1) == labels).all()
    assert set(np.unique(labels)) == {c["value"] for c in GEOLOGY_CLASSES}
    assert colours[1][:3] == (0x7f, 0x7f, 0x7f)  # bedrock grey
    ds = gdal.Open(str(a.labels_raster))
    ds.GetFileList()  # GDAL 3.6 reads the .aux.xml lazily
    assert ds.GetRasterBand(1).GetCategoryNames()[:3] == ["background", "bedrock", "wetland"]
    ds = None
    assert json.loads(a.classes_json.read_text())["classes"][5]["name"] == "landslide"
    with rasterio.open(a.dem) as dem, rasterio.open(a.optical) as opt:
        z = dem.read(1)
        assert opt.descriptions == ("B02", "B03", "B04", "B08")
    assert z[labels == 1].mean() > z[labels == 0].mean() > z[labels == 2].mean()  # outcrops high, wetlands low
    assert z[labels == 3].mean() < z[labels == 0].mean()  # ravines incised
