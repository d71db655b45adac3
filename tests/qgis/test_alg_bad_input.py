"""Bad input through processing.run: a clear QgsProcessingException and no output file left behind."""
from __future__ import annotations

import numpy as np
import pytest
from rasterio.transform import from_origin
from support import write_raster as _write


def run(alg, params):
    import processing

    return processing.run(f"landslide_mapper:{alg}", params)


@pytest.fixture
def small(tmp_path):
    s1 = _write(tmp_path / "s1.tif", np.full((2, 64, 64), -8.0, np.float32), ["VV", "VH"])
    s2 = _write(tmp_path / "s2.tif", np.full((4, 64, 64), 1000, np.uint16), ["B02", "B03", "B04", "B08"])
    return tmp_path, s1, s2


def test_missing_band_names_file_and_band(landslide_provider, small):
    from qgis.core import QgsProcessingException

    tmp, s1, s2 = small
    with pytest.raises(QgsProcessingException, match=r"'VV' is needed from the post-event rasters \(s2.tif\)"):
        run("change_stack", {"PRE": [s1, s2], "POST": [s2], "PRESET": 1, "OUTPUT": str(tmp / "stack.tif")})
    assert not (tmp / "stack.tif").exists()


def test_non_overlapping_extents_are_refused(landslide_provider, small):
    from qgis.core import QgsProcessingException

    tmp, s1, s2 = small
    far = _write(tmp / "far.tif", np.full((2, 64, 64), -8.0, np.float32), ["VV", "VH"],
                 transform=from_origin(900000, 6000000, 10, 10))
    with pytest.raises(QgsProcessingException, match="does not overlap"):
        run("change_stack", {"PRE": [s1, s2], "POST": [far, s2], "PRESET": 1, "OUTPUT": str(tmp / "stack.tif")})
    assert not (tmp / "stack.tif").exists()


def test_wrong_band_count_for_the_model_is_refused(landslide_provider, small):
    from qgis.core import QgsProcessingException
    from support import constant_package

    tmp, s1, _ = small
    pkg = constant_package(tmp / "m.lmpkg", ["pre_VV", "post_VV", "dNDVI"], tile_size=64)
    two = _write(tmp / "two.tif", np.zeros((2, 64, 64), np.float32), ["pre_VV", "post_VV"])
    with pytest.raises(QgsProcessingException, match="has band.*dNDVI that the model needs"):
        run("predict", {"PACKAGE": pkg, "INPUT": two, "OUTPUT_PROBABILITY": str(tmp / "p.tif"),
                        "OUTPUT_MASK": str(tmp / "m.tif")})
    assert not (tmp / "p.tif").exists() and not (tmp / "m.tif").exists()


def test_missing_label_field_is_refused(landslide_provider, small):
    from osgeo import ogr, osr
    from qgis.core import QgsProcessingException

    tmp, s1, _ = small
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32632)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(tmp / "l.gpkg"))
    lyr = ds.CreateLayer("slides", srs, ogr.wkbPolygon)
    lyr.CreateField(ogr.FieldDefn("type", ogr.OFTString))
    f = ogr.Feature(lyr.GetLayerDefn())
    f.SetField("type", "debris flow")
    f.SetGeometry(ogr.CreateGeometryFromWkt("POLYGON((400100 6799900,400200 6799900,400200 6799800,400100 6799900))"))
    lyr.CreateFeature(f)
    ds = None
    stack = _write(tmp / "stack.tif", np.zeros((3, 64, 64), np.float32), ["pre_VV", "post_VV", "dNDVI"])
    with pytest.raises(QgsProcessingException, match="no field 'class'.*type"):
        run("export_chips", {"INPUT": stack, "LABELS": str(tmp / "l.gpkg"), "TILE_SIZE": 32,
                             "OUTPUT_FOLDER": str(tmp / "chips")})
    assert not (tmp / "chips").exists() or not any((tmp / "chips").iterdir())


def test_band_mapping_of_a_band_the_model_does_not_use_is_refused(landslide_provider, small):
    from qgis.core import QgsProcessingException
    from support import constant_package

    tmp, _, _ = small
    pkg = constant_package(tmp / "m.lmpkg", ["pre_VV", "post_VV", "dNDVI"], tile_size=64)
    stack = _write(tmp / "stack.tif", np.zeros((3, 64, 64), np.float32), ["pre_VV", "post_VV", "dNDVI"])
    with pytest.raises(QgsProcessingException, match=r"BAND_MAPPING\) names band\(s\) foo that the model does not use"):
        run("predict", {"PACKAGE": pkg, "INPUT": stack, "BAND_MAPPING": "foo=1:1",
                        "OUTPUT_PROBABILITY": str(tmp / "p.tif"), "OUTPUT_MASK": str(tmp / "m.tif")})
    assert not (tmp / "p.tif").exists() and not (tmp / "m.tif").exists()
