import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from landslide_mapper.common.errors import InputError
from landslide_mapper.core.stack import PRESETS, build_change_stack, describe_band, resolve_bands


@pytest.fixture
def scenes(tmp_path, raster_writer):
    """Pre/post S2 (UInt16 ×10⁴, nodata 0) with known NDVI, and S1 VV/VH in dB."""
    h, w = 30, 40
    red_pre = np.full((h, w), 500, np.uint16)
    nir_pre = np.full((h, w), 4500, np.uint16)  # NDVI 0.8
    red_post, nir_post = red_pre.copy(), nir_pre.copy()
    red_post[10:20, 10:20] = 1500
    nir_post[10:20, 10:20] = 2500  # NDVI 0.25 → dNDVI −0.55
    nir_post[0, 0] = 0  # nodata (cloud-masked)
    blue = np.full((h, w), 300, np.uint16)
    pre_s2 = raster_writer(tmp_path / "pre_s2.tif", np.stack([blue, blue, red_pre, nir_pre]),
                           ["B02", "B03", "B04", "B08"], nodata=0)
    post_s2 = raster_writer(tmp_path / "post_s2.tif", np.stack([blue, blue, red_post, nir_post]),
                            ["B02", "B03", "B04", "B08"], nodata=0)
    vv = np.full((h, w), -8.0, np.float32)
    pre_s1 = raster_writer(tmp_path / "pre_s1.tif", np.stack([vv, vv - 6]), ["VV", "VH"], nodata=np.nan)
    post_s1 = raster_writer(tmp_path / "post_s1.tif", np.stack([vv + 2, vv - 9]), ["VV", "VH"], nodata=np.nan)
    return dict(pre=[pre_s1, pre_s2], post=[post_s1, post_s2], tmp=tmp_path)


def test_setting2_stack_has_catalogue_bands_and_known_dndvi(scenes):
    out = build_change_stack(scenes["pre"], scenes["post"], scenes["tmp"] / "stack.tif", "setting2")
    with rasterio.open(out) as src:
        assert list(src.descriptions) == ["pre_VV", "post_VV", "dNDVI"]
        pre_vv, post_vv, dndvi = src.read()
    assert np.allclose(pre_vv, -8) and np.allclose(post_vv, -6)
    assert dndvi[15, 15] == pytest.approx(0.25 - 0.8, abs=1e-5)
    assert dndvi[25, 30] == pytest.approx(0.0, abs=1e-6)
    assert np.isnan(dndvi[0, 0])  # nodata propagates


def test_setting4_and_s1_all_presets(scenes):
    out = build_change_stack(scenes["pre"], scenes["post"], scenes["tmp"] / "s4.tif", "setting4")
    with rasterio.open(out) as src:
        assert list(src.descriptions) == PRESETS["setting4"]
        assert src.read(3)[15, 15] == 1500
    out = build_change_stack(scenes["pre"], scenes["post"], scenes["tmp"] / "s1.tif", "s1_all")
    with rasterio.open(out) as src:
        assert np.allclose(src.read(3), 2.0) and np.allclose(src.read(6), -3.0)


def test_missing_band_names_the_files_and_writes_nothing(scenes):
    out = scenes["tmp"] / "bad.tif"
    with pytest.raises(InputError, match=r"'VV' is needed from the post-event rasters \(post_s2.tif\)"):
        build_change_stack(scenes["pre"], scenes["post"][1:], out, "setting2")
    assert not out.exists()


def test_non_overlapping_inputs_are_refused(scenes, raster_writer):
    far = raster_writer(scenes["tmp"] / "far.tif", np.zeros((2, 5, 5), np.float32), ["VV", "VH"],
                        transform=from_origin(900000, 6000000, 10, 10))
    with pytest.raises(InputError, match="does not overlap"):
        build_change_stack(scenes["pre"], [far, scenes["post"][1]], scenes["tmp"] / "x.tif", "setting2")
    assert not (scenes["tmp"] / "x.tif").exists()


def test_post_raster_on_a_coarser_grid_is_resampled_onto_the_reference(scenes, raster_writer):
    coarse = raster_writer(scenes["tmp"] / "coarse_s1.tif", np.full((2, 10, 14), -5.0, np.float32), ["VV", "VH"],
                           transform=from_origin(400000, 6800000, 30, 30), nodata=np.nan)
    out = build_change_stack(scenes["pre"], [coarse, scenes["post"][1]], scenes["tmp"] / "s.tif", "setting3")
    with rasterio.open(out) as src, rasterio.open(scenes["pre"][0]) as ref:
        assert src.transform == ref.transform and src.shape == ref.shape
        assert np.allclose(src.read(2), -5.0)


def test_band_lists_and_descriptions():
    assert resolve_bands("pre_VV, dVH, slope") == ["pre_VV", "dVH", "slope"]
    with pytest.raises(InputError, match="Unknown stack band 'post_XYZ'"):
        resolve_bands("post_XYZ")
    assert "after the event" in describe_band("post_VV")
