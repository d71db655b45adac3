"""Predict on a raster whose bands have other names: the refusal gives the exact positional BAND_MAPPING."""
import re

import numpy as np
import pytest
import rasterio

from landslide_mapper.common.errors import InputError
from landslide_mapper.core.predict import sliding_window_predict
from landslide_mapper.models.package import positional_mapping, read_package

BANDS = ["B04", "B03", "B02"]


def _refusal(pkg, path, out, **kw) -> str:
    with pytest.raises(InputError) as info:
        sliding_window_predict(pkg, path, out, **kw)
    assert not out.exists()
    return str(info.value)


def test_same_band_count_without_names_gets_the_exact_band_mapping_to_pass(tmp_path, raster_writer,
                                                                           package_factory):
    rng = np.random.default_rng(3)
    path = raster_writer(tmp_path / "s.tif", rng.normal(size=(3, 70, 70)).astype(np.float32), ["B1", "B2", "B3"])
    pkg = read_package(package_factory(tmp_path / "c.lmpkg", BANDS, tile_size=64))
    message = _refusal(pkg, path, tmp_path / "p.tif")
    assert "No input raster has band(s) B04, B03, B02" in message
    assert "pass BAND_MAPPING 'B04=1:1,B03=1:2,B02=1:3'" in message and "check the order" in message
    # The text given is what predict accepts: parse it as the toolbox does (band=raster:band, rasters from 1).
    text = re.search(r"BAND_MAPPING '([^']+)'", message).group(1)
    mapping = {name: (int(r) - 1, int(b)) for name, r, b in re.findall(r"(\w+)=(\d+):(\d+)", text)}
    assert mapping == {"B04": (0, 1), "B03": (0, 2), "B02": (0, 3)}
    out = sliding_window_predict(pkg, path, tmp_path / "p.tif", band_mapping=mapping)
    with rasterio.open(out.probability) as src:
        assert src.read(1).shape == (70, 70)


def test_no_positional_guess_when_counts_differ_or_some_names_match(tmp_path, raster_writer, package_factory):
    pkg = read_package(package_factory(tmp_path / "c.lmpkg", BANDS, tile_size=64))
    four = raster_writer(tmp_path / "four.tif", np.zeros((4, 64, 64), np.float32), ["a", "b", "c", "d"])
    assert "BAND_MAPPING" not in _refusal(pkg, four, tmp_path / "p.tif")
    partly = raster_writer(tmp_path / "partly.tif", np.zeros((3, 64, 64), np.float32), ["B04", "x", "y"])
    assert "BAND_MAPPING" not in _refusal(pkg, partly, tmp_path / "p.tif")


def test_positional_mapping_text():
    assert positional_mapping(["pre_VV", "dNDVI"]) == "pre_VV=1:1,dNDVI=1:2"
    assert positional_mapping(["x"], raster_number=2) == "x=2:1"
