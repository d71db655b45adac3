"""Prediction against independent whole-image computations (issue 17).

The network is a real, non-constant smp Unet with random weights (fixed seed), so a tile read or blended at a wrong
place changes the output. The reference below is written from the documented rules alone (evenly spread tiles
with a minimum overlap, tiles shrunk to the fewest multiples of 32 px, a raised-cosine taper floored at 1e-3,
weighted mean of sigmoid probabilities, NaN wherever a band is nodata), computed in float64 on the whole image.
"""
import math

import numpy as np
import pytest
import rasterio
import torch

from landslide_mapper.core.predict import sliding_window_predict
from landslide_mapper.models.package import make_manifest, read_package, write_package
from landslide_mapper.models.registry import create_model

BANDS = ["pre_VV", "post_VV", "dNDVI"]
KWARGS = {"encoder_depth": 3, "decoder_channels": [16, 8, 8]}
MEAN, STD = np.array([0.5, -1.0, 0.0]), np.array([1.0, 2.0, 0.5])


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    torch.manual_seed(17)
    net = create_model("Unet", "resnet18", 3, **KWARGS)
    manifest = make_manifest(
        members=[{"architecture": "Unet", "encoder": "resnet18", "model_kwargs": KWARGS,
                  "weights": "weights.safetensors", "weight": 1.0}],
        input_bands=BANDS, band_stats=[{"name": b, "mean": m, "std": s} for b, m, s in zip(BANDS, MEAN, STD)],
        tile_size=64, overlap=16, threshold=0.5, classes=[])
    return read_package(write_package(tmp_path_factory.mktemp("pkg") / "r.lmpkg", manifest, [net.state_dict()]))


@pytest.fixture
def scene(tmp_path, raster_writer):
    """150×170 px, three bands of structured random values, nodata holes in single bands and in all bands."""
    rng = np.random.default_rng(5)
    data = (rng.normal(size=(3, 150, 170)) * STD[:, None, None] + MEAN[:, None, None]).astype(np.float32)
    data += np.sin(np.arange(170) / 9.0)[None, None, :].astype(np.float32)
    data[:, 10:20, 30:45] = np.nan  # all bands
    data[1, 100:104, 120:160] = np.nan  # one band only
    data[2, 60, 5] = np.nan  # one pixel
    return data, raster_writer(tmp_path / "stack.tif", data, BANDS, nodata=np.nan)


# ---------------------------------------------------------------------------------------------- the reference
def _positions(length, tile, overlap):
    if length <= tile:
        return [0]
    n = math.ceil((length - tile) / (tile - overlap)) + 1
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def _side(length, max_tile, overlap):
    """Smallest multiple of 32 (≤ max_tile) that covers `length` with the fewest tiles of at least `overlap`."""
    if length <= max_tile:
        return max(32, -(-length // 32) * 32)
    n = min(k for k in range(1, length) if k * max_tile - (k - 1) * overlap >= length)
    return next(s for s in range(32, max_tile + 1, 32) if n * s - (n - 1) * overlap >= length)


def _taper(length, overlap):
    ramp = np.ones(length)
    overlap = min(overlap, length // 2)
    for i in range(overlap):
        ramp[i] = ramp[length - 1 - i] = max(0.5 - 0.5 * math.cos(math.pi * (i + 0.5) / overlap), 1e-3)
    return ramp


def reference(package, data, tile=64, overlap=16, shift=None):
    """Whole-image blended probability in float64; `shift` = (tile number, rows, cols) misplaces one tile."""
    net = package.networks[0].eval()
    _, h, w = data.shape
    valid = np.isfinite(data).all(axis=0)
    x = np.nan_to_num((data.astype(np.float64) - MEAN[:, None, None]) / STD[:, None, None], nan=0.0)
    sh, sw = _side(h, tile, overlap), _side(w, tile, overlap)
    x = np.pad(x, ((0, 0), (0, max(0, sh - h)), (0, max(0, sw - w))))
    weight = np.outer(_taper(sh, overlap), _taper(sw, overlap))
    acc, wsum = np.zeros((max(h, sh), max(w, sw))), np.zeros((max(h, sh), max(w, sw)))
    n = 0
    for r in _positions(h, sh, overlap):
        for q in _positions(w, sw, overlap):
            tile_x = torch.from_numpy(x[None, :, r:r + sh, q:q + sw].astype(np.float32))
            with torch.no_grad():
                p = torch.sigmoid(net(tile_x))[0, 0].double().numpy()
            dr, dq = (shift[1], shift[2]) if shift and shift[0] == n else (0, 0)
            rr, qq = min(max(r + dr, 0), acc.shape[0] - sh), min(max(q + dq, 0), acc.shape[1] - sw)
            acc[rr:rr + sh, qq:qq + sw] += p * weight
            wsum[rr:rr + sh, qq:qq + sw] += weight
            n += 1
    with np.errstate(invalid="ignore"):  # a misplaced tile may leave a pixel no tile covers: NaN there
        prob = (acc / wsum)[:h, :w]
    return np.where(valid, prob, np.nan), (sh, sw), n


def _read(path):
    with rasterio.open(path) as src:
        return src.read(1)


def _assert_same(got, want, atol=1e-5):
    assert np.array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[np.isfinite(want)], want[np.isfinite(want)], atol=atol, rtol=0)


# --------------------------------------------------------------------------------------------------- tests
def test_blended_probability_equals_the_whole_image_reference(tmp_path, package, scene):
    data, path = scene
    want, side, n = reference(package, data)
    result = sliding_window_predict(package, path, tmp_path / "p.tif", engine="torch", batch_size=3)
    assert result.tile_size == side and result.tiles == n  # 150×170 is no multiple of the tile: 3 × 4 tiles
    got = _read(result.probability)
    assert np.nanstd(got) > 0.01  # a real, non-constant prediction
    _assert_same(got, want)


def test_onnx_runtime_blended_probability_matches_the_reference(tmp_path, package, scene):
    pytest.importorskip("onnxruntime")
    data, path = scene
    want, _, _ = reference(package, data)
    result = sliding_window_predict(package, path, tmp_path / "p.tif", engine="onnx")
    assert result.engine == "ONNX Runtime"
    _assert_same(_read(result.probability), want, atol=1e-4)


def test_a_tile_placed_one_pixel_off_is_caught_by_the_reference(tmp_path, package, scene):
    """The comparison is sensitive to placement: a reference with one tile one pixel off no longer matches."""
    data, path = scene
    got = _read(sliding_window_predict(package, path, tmp_path / "p.tif", engine="torch").probability)
    for shift in ((5, 1, 0), (5, 0, -1), (0, 0, 1)):
        wrong, _, _ = reference(package, data, shift=shift)
        both = np.isfinite(wrong) & np.isfinite(got)
        assert np.max(np.abs(got[both] - wrong[both])) > 1e-3


def test_extent_equals_the_reference_of_the_cropped_image(tmp_path, package, scene):
    data, path = scene
    extent = (400000 + 250, 6800000 - 1370, 400000 + 1550, 6800000 - 70)  # cols 25..155, rows 7..137
    want, side, n = reference(package, data[:, 7:137, 25:155])
    result = sliding_window_predict(package, path, tmp_path / "p.tif", extent=extent, engine="torch")
    assert result.tile_size == side and result.tiles == n
    _assert_same(_read(result.probability), want)


def test_raster_smaller_than_a_tile_is_padded_like_the_reference(tmp_path, package, scene, raster_writer):
    data, _ = scene
    small = data[:, 40:90, 100:141]
    path = raster_writer(tmp_path / "small.tif", small, BANDS, nodata=np.nan)
    want, side, n = reference(package, small, tile=128)
    result = sliding_window_predict(package, path, tmp_path / "p.tif", tile_size=128, engine="torch")
    assert result.tile_size == side == (64, 64) and n == 1
    _assert_same(_read(result.probability), want)


def test_bands_from_several_rasters_by_name_equal_the_single_stack(tmp_path, package, scene, raster_writer):
    """Bands found by description in two rasters (in another order) give the same map as one stack."""
    data, _ = scene
    a = raster_writer(tmp_path / "a.tif", data[[2, 0]], ["dNDVI", "pre_VV"], nodata=np.nan)
    b = raster_writer(tmp_path / "b.tif", data[[1]], ["post_VV"], nodata=np.nan)
    want, _, _ = reference(package, data)
    result = sliding_window_predict(package, [a, b], tmp_path / "p.tif", engine="torch")
    _assert_same(_read(result.probability), want)


def test_band_mapping_takes_each_band_from_the_raster_and_band_named(tmp_path, package, scene, raster_writer):
    """Undescribed rasters: every band comes from the (raster, band) the mapping names, and only from there."""
    data, _ = scene
    rng = np.random.default_rng(9)
    decoy = rng.normal(size=data.shape[1:]).astype(np.float32) * 3
    first = raster_writer(tmp_path / "first.tif", np.stack([decoy, data[1]]), ["", ""], nodata=np.nan)
    second = raster_writer(tmp_path / "second.tif", np.stack([data[2], decoy + 1, data[0]]), ["", "", ""],
                           nodata=np.nan)
    mapping = {"pre_VV": (1, 3), "post_VV": (0, 2), "dNDVI": (1, 1)}
    want, _, _ = reference(package, data)
    got = _read(sliding_window_predict(package, [first, second], tmp_path / "p.tif", band_mapping=mapping,
                                       engine="torch").probability)
    _assert_same(got, want)
    # Naming the decoy band instead of the right one must change the map: the bands really feed the network.
    for band, wrong in (("pre_VV", (0, 1)), ("post_VV", (1, 2)), ("dNDVI", (1, 3))):
        swapped = sliding_window_predict(package, [first, second], tmp_path / f"w_{band}.tif",
                                         band_mapping={**mapping, band: wrong}, engine="torch")
        assert np.nanmax(np.abs(_read(swapped.probability) - want)) > 1e-3, band
