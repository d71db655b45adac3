"""Inputs that cannot mean anything are refused through processing.run, not processed.

Each refusal is a QgsProcessingException whose message names the parameter and/or the file and says what to do, with
no traceback; the input files are unchanged and the output folder holds nothing afterwards (no output, no
temporary). Where the result is still meaningful the run succeeds with a warning in the log (and the report).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from support import constant_package, export_learnable_chips, write_polygons, write_raster

BANDS = ["pre_VV", "post_VV", "dNDVI"]
N = 64  # pixels per side of the small rasters (10 m, origin 400000, 6800000 in EPSG:32632)
SQUARE = [(400100, 6799900), (400300, 6799900), (400300, 6799700), (400100, 6799700)]
FAR_SQUARE = [(900100, 5999900), (900300, 5999900), (900300, 5999700), (900100, 5999700)]


def run(alg, params, feedback=None):
    import processing

    return processing.run(f"landslide_mapper:{alg}", params, feedback=feedback)


def logging_feedback():
    """A Processing feedback that keeps the log lines (`.lines`)."""
    from qgis.core import QgsProcessingFeedback

    class Log(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.lines = []

        def pushInfo(self, info):  # noqa: N802 (Qt naming)
            self.lines.append(info)

    return Log()


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(alg: str, params: dict, inputs: Path, out: Path, *patterns: str) -> str:
    """Run `alg`, expect a clear refusal matching every pattern, inputs unchanged and `out` left empty."""
    from qgis.core import QgsProcessingException

    before = digests(inputs)
    with pytest.raises(QgsProcessingException) as info:
        run(alg, params)
    message = str(info.value)
    assert "Traceback" not in message, message
    for pattern in patterns:
        assert re.search(pattern, message), f"{pattern!r} not in: {message}"
    after = digests(inputs)
    assert {k: after.get(k) for k in before} == before, "an input file was changed"
    assert not out.exists() or not any(out.iterdir()), f"left in the output folder: {list(out.iterdir())}"
    return message


def truncated_copy(source: str, target: Path, share: float = 0.6) -> str:
    data = Path(source).read_bytes()
    target.write_bytes(data[:int(len(data) * share)])
    return str(target)


def tiled(path: Path, data: np.ndarray, descriptions, nodata=None) -> str:
    """A tiled, compressed GeoTIFF (blocks spread through the file, so a truncated copy loses some)."""
    data = data[None] if data.ndim == 2 else data
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=data.shape[0],
                       dtype=data.dtype, crs="EPSG:32632", transform=from_origin(400000, 6800000, 10, 10),
                       nodata=nodata, tiled=True, blockxsize=64, blockysize=64, compress="deflate") as dst:
        dst.write(data)
        for i, d in enumerate(descriptions, start=1):
            dst.set_band_description(i, d)
    return str(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Inputs shared by the tests of this module (never written to by them)."""
    d = tmp_path_factory.mktemp("meaningless_inputs")
    rng = np.random.default_rng(0)
    stack = rng.normal(0, 1, (3, N, N)).astype(np.float32)
    yy, xx = np.mgrid[0:N, 0:N]
    prob = rng.uniform(0, 1, (N, N)).astype(np.float32)
    truth = np.zeros((N, N), np.uint8)
    truth[10:30, 10:30] = 1
    paths = {
        "package": constant_package(d / "m.lmpkg", BANDS, tile_size=64),
        "stack": write_raster(d / "stack.tif", stack, BANDS, nodata=np.nan),
        "stack_nan": write_raster(d / "stack_nan.tif", np.full((3, N, N), np.nan, np.float32), BANDS, nodata=np.nan),
        "dem": write_raster(d / "dem.tif", (xx * 2.0 + yy).astype(np.float32), ["elevation"], nodata=-9999),
        "dem_nodata": write_raster(d / "dem_nodata.tif", np.full((N, N), -9999, np.float32), ["elevation"],
                                   nodata=-9999),
        "pre_s1": write_raster(d / "pre_s1.tif", np.full((2, N, N), -8.0, np.float32), ["VV", "VH"]),
        "pre_s1_nodata": write_raster(d / "pre_s1_nodata.tif", np.full((2, N, N), np.nan, np.float32), ["VV", "VH"],
                                      nodata=np.nan),
        "post_s1": write_raster(d / "post_s1.tif", np.full((2, N, N), -6.0, np.float32), ["VV", "VH"]),
        "prob": write_raster(d / "prob.tif", prob, ["landslide_probability"], nodata=np.nan),
        "prob255": write_raster(d / "prob255.tif", prob * 255, ["landslide_probability"], nodata=np.nan),
        "mask": write_raster(d / "mask.tif", (prob > 0.5).astype(np.uint8), ["landslide"], nodata=255),
        "truth": write_raster(d / "truth.tif", truth, ["label"]),
        "truth_gpkg": write_polygons(d / "truth.gpkg", [SQUARE]),
        "truth_far": write_polygons(d / "truth_far.gpkg", [FAR_SQUARE]),
        "area_far": write_polygons(d / "area_far.gpkg", [FAR_SQUARE], field=None, layer="area"),
        # metres in a layer marked as degrees: PROJ cannot reproject them
        "labels_bad_crs": write_polygons(d / "labels_bad_crs.gpkg", [SQUARE], epsg=4326),
    }
    big = rng.normal(0, 1, (256, 256)).astype(np.float32)
    paths["stack_truncated"] = truncated_copy(tiled(d / "stack_tiled.tif", np.stack([big] * 3), BANDS, np.nan),
                                              d / "stack_truncated.tif")
    paths["dem_truncated"] = truncated_copy(tiled(d / "dem_tiled.tif", big + 100, ["elevation"], -9999),
                                            d / "dem_truncated.tif")
    paths["prob_truncated"] = truncated_copy(tiled(d / "prob_tiled.tif", rng.uniform(0, 1, (256, 256)).astype(
        np.float32), ["landslide_probability"], np.nan), d / "prob_truncated.tif")
    paths["pre_s1_truncated"] = truncated_copy(tiled(d / "pre_s1_tiled.tif", np.stack([big - 8] * 2), ["VV", "VH"]),
                                               d / "pre_s1_truncated.tif")
    return d, paths


@pytest.fixture
def out(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


# ------------------------------------------------------------------------------------------- all-nodata input
def test_all_nodata_inputs_are_refused_naming_the_parameter_and_file(landslide_provider, data, out):
    d, p = data
    refused("predict", {"PACKAGE": p["package"], "INPUT": p["stack_nan"], "ENGINE": 1,
                        "OUTPUT_PROBABILITY": str(out / "p.tif"), "OUTPUT_MASK": str(out / "m.tif")},
            d, out, r"no valid pixel", r"dNDVI \(band 3 of '.*stack_nan\.tif', INPUT\)", r"nodata value")
    refused("terrain", {"INPUT": p["dem_nodata"], "OUTPUT": str(out / "t.tif")},
            d, out, r"DEM '.*dem_nodata\.tif' \(INPUT\) holds only nodata", r"nodata value -9999")
    refused("change_stack", {"PRE": [p["pre_s1_nodata"]], "POST": [p["post_s1"]], "PRESET": 2,
                             "OUTPUT": str(out / "s.tif")},
            d, out, r"pre_VV.* nodata everywhere", r"'.*pre_s1_nodata\.tif' \(PRE\)", r"Check that")


# ------------------------------------------------------------------------------------------- zero-size extent
@pytest.mark.parametrize("extent", ["400100,400100,6799500,6799800 [EPSG:32632]",   # no width
                                    "400100,400500,6799500,6799500 [EPSG:32632]"])  # no height
def test_an_extent_of_zero_size_is_refused_not_taken_as_the_whole_raster(landslide_provider, data, out, extent):
    d, p = data
    runs = {
        "predict": {"PACKAGE": p["package"], "INPUT": p["stack"], "ENGINE": 1,
                    "OUTPUT_PROBABILITY": str(out / "p.tif")},
        "terrain": {"INPUT": p["dem"], "OUTPUT": str(out / "t.tif")},
        "change_stack": {"PRE": [p["pre_s1"]], "POST": [p["post_s1"]], "PRESET": 2, "OUTPUT": str(out / "s.tif")},
        "evaluate": {"PREDICTION": p["prob"], "TRUTH": p["truth"], "OUTPUT_CONFUSION": str(out / "c.tif"),
                     "OUTPUT_REPORT": str(out / "r.json")},
        "export_chips": {"INPUT": p["stack"], "LABELS": p["truth"], "TILE_SIZE": 32,
                         "OUTPUT_FOLDER": str(out / "chips")},
    }
    for alg, params in runs.items():
        refused(alg, {**params, "EXTENT": extent}, d, out, r"The extent EXTENT .* has zero width or height",
                r"leave EXTENT empty")


# ------------------------------------------------------------------------------------------------- resolution
@pytest.mark.parametrize("resolution, pattern", [
    (0, r"RESOLUTION must be a positive pixel size"),
    (1e-6, r"RESOLUTION = 1e-06 would make a raster of .* pixels, more than the 2,147,483,648 \(2\^31\)"),
    (1e-300, r"RESOLUTION = 1e-300 would make a raster"),
    (1e12, r"RESOLUTION = 1e\+12 is larger than the whole area"),
])
def test_a_resolution_of_zero_or_absurd_size_is_refused(landslide_provider, data, out, resolution, pattern):
    d, p = data
    refused("change_stack", {"PRE": [p["pre_s1"]], "POST": [p["post_s1"]], "PRESET": 2, "RESOLUTION": resolution,
                             "OUTPUT": str(out / "s.tif")}, d, out, pattern)
    refused("s1_composite", {"INPUT": [p["pre_s1"]], "RESOLUTION": resolution, "OUTPUT": str(out / "s1.tif")},
            d, out, pattern)


def test_a_fine_resolution_over_a_small_extent_is_still_fine(landslide_provider, data, out):
    d, p = data
    result = run("change_stack", {"PRE": [p["pre_s1"]], "POST": [p["post_s1"]], "PRESET": 2, "RESOLUTION": 1,
                                  "EXTENT": "400100,400150,6799800,6799850 [EPSG:32632]",
                                  "OUTPUT": str(out / "s.tif")})
    with rasterio.open(result["OUTPUT"]) as src:
        assert (src.width, src.height) == (50, 50)


# ------------------------------------------------------------------------------------- truth and prediction
def test_truth_or_evaluation_area_off_the_prediction_is_refused_naming_both(landslide_provider, data, out):
    d, p = data
    refused("evaluate", {"PREDICTION": p["prob"], "TRUTH": p["truth_far"], "OUTPUT_CONFUSION": str(out / "c.tif"),
                         "OUTPUT_REPORT": str(out / "r.json")},
            d, out, r"truth '.*truth_far\.gpkg' \(TRUTH\) lies on prediction '.*prob\.tif' \(PREDICTION\)",
            r"CRS is right")
    refused("evaluate", {"PREDICTION": p["prob"], "TRUTH": p["truth_gpkg"], "EVALUATION_AREA": p["area_far"],
                         "OUTPUT_CONFUSION": str(out / "c.tif"), "OUTPUT_REPORT": str(out / "r.json")},
            d, out, r"Evaluation area '.*area_far\.gpkg' \(EVALUATION_AREA\) does not overlap prediction "
                    r"'.*prob\.tif' \(PREDICTION\)")
    refused("compare_predictions", {"PREDICTION_A": p["prob"], "PREDICTION_B": p["mask"], "TRUTH": p["truth_far"],
                                    "OUTPUT_COMPARISON": str(out / "cmp.tif"), "OUTPUT_REPORT": str(out / "cr.json")},
            d, out, r"truth_far\.gpkg' \(TRUTH\) lies on prediction '.*prob\.tif' \(PREDICTION_A\)")


def test_truth_without_landslides_inside_the_extent_is_a_warning_in_log_and_report(landslide_provider, data, out):
    d, p = data
    log = logging_feedback()
    result = run("evaluate", {"PREDICTION": p["prob"], "TRUTH": p["truth_gpkg"],
                              "EXTENT": "400400,400600,6799400,6799600 [EPSG:32632]",  # away from the landslide
                              "OUTPUT_CONFUSION": str(out / "c.tif"), "OUTPUT_REPORT": str(out / "r.json")}, log)
    assert result["FP"] > 0 and result["TP"] == 0
    assert any(line.startswith("Warning: the truth") and "no landslide pixel" in line for line in log.lines)
    assert "no landslide pixel" in json.loads(Path(result["OUTPUT_REPORT"]).read_text())["warning"]


def test_probabilities_outside_0_1_are_refused_naming_file_and_range(landslide_provider, data, out):
    d, p = data
    refused("evaluate", {"PREDICTION": p["prob255"], "TRUTH": p["truth"], "OUTPUT_CONFUSION": str(out / "c.tif"),
                         "OUTPUT_REPORT": str(out / "r.json")},
            d, out, r"Prediction '.*prob255\.tif' \(PREDICTION\) is read as a probability but holds values from "
                    r"[0-9.]+ to 25[0-9.]+", r"PREDICTION_TYPE")
    refused("compare_predictions", {"PREDICTION_A": p["prob"], "PREDICTION_B": p["prob255"], "TRUTH": p["truth"],
                                    "OUTPUT_COMPARISON": str(out / "cmp.tif"), "OUTPUT_REPORT": str(out / "cr.json")},
            d, out, r"'.*prob255\.tif' \(PREDICTION_B\) is read as a probability")
    # as a mask (> 0 = landslide) the same raster is fine
    result = run("evaluate", {"PREDICTION": p["prob255"], "TRUTH": p["truth"], "PREDICTION_TYPE": 1,
                              "OUTPUT_CONFUSION": str(out / "c.tif"), "OUTPUT_REPORT": str(out / "r.json")})
    assert result["TP"] > 0


# ---------------------------------------------------------------------------------- ±Inf and absurd magnitudes
def test_infinite_and_fill_values_in_predict_inputs_become_nodata_with_a_warning(landslide_provider, data, out,
                                                                                  tmp_path):
    d, p = data
    with rasterio.open(p["stack"]) as src:
        stack = src.read()
    stack[0, :8, :8] = np.inf
    stack[1, 8:16, :8] = -np.inf
    stack[2, 16:24, :8] = 1e38
    stack[0, 24:32, :8] = -3.4028235e38  # an undeclared ArcGIS nodata value
    odd = write_raster(tmp_path / "odd.tif", stack, BANDS, nodata=np.nan)
    log = logging_feedback()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no numpy overflow warning may reach the user
        result = run("predict", {"PACKAGE": p["package"], "INPUT": odd, "ENGINE": 1,
                                 "OUTPUT_PROBABILITY": str(out / "p.tif")}, log)
    with rasterio.open(result["OUTPUT_PROBABILITY"]) as src:
        prob = src.read(1)
    assert np.isnan(prob[:32, :8]).all() and np.isfinite(prob[32:, :]).all() and np.isfinite(prob[:, 8:]).all()
    assert np.nanmax(prob) <= 1.0
    warned = [line for line in log.lines if line.startswith("Warning:")]
    assert any("pre_VV (band 1 of '" in w and "odd.tif" in w and "taken as nodata" in w for w in warned), warned


def test_a_predict_band_that_is_wholly_absurd_is_refused(landslide_provider, data, out, tmp_path):
    d, p = data
    with rasterio.open(p["stack"]) as src:
        stack = src.read()
    huge, far = stack.copy(), stack.copy()
    huge[2] = 1e38
    far[1] = 5e3  # 5000 standard deviations from the training mean of the package: other units
    inputs = tmp_path / "in"
    inputs.mkdir()
    huge_path = write_raster(inputs / "huge.tif", huge, BANDS, nodata=np.nan)
    far_path = write_raster(inputs / "far.tif", far, BANDS, nodata=np.nan)
    refused("predict", {"PACKAGE": p["package"], "INPUT": huge_path, "ENGINE": 1,
                        "OUTPUT_PROBABILITY": str(out / "p.tif"), "OUTPUT_MASK": str(out / "m.tif")},
            inputs, out, r"no valid pixel in dNDVI \(band 3 of '.*huge\.tif', INPUT\)", r"1e30")
    refused("predict", {"PACKAGE": p["package"], "INPUT": far_path, "ENGINE": 1,
                        "OUTPUT_PROBABILITY": str(out / "p.tif"), "OUTPUT_MASK": str(out / "m.tif")},
            inputs, out, r"post_VV \(band 2 of '.*far\.tif', INPUT\) lies more than 1000 standard deviations",
            r"NORMALIZATION")


# --------------------------------------------------------------------------------- truncated rasters and chips
def test_truncated_rasters_are_refused_naming_the_file(landslide_provider, data, out):
    d, p = data
    damaged = r"could not be read .*truncated or damaged"
    refused("predict", {"PACKAGE": p["package"], "INPUT": p["stack_truncated"], "ENGINE": 1,
                        "OUTPUT_PROBABILITY": str(out / "p.tif"), "OUTPUT_MASK": str(out / "m.tif")},
            d, out, r"Raster '.*stack_truncated\.tif' " + damaged)
    refused("terrain", {"INPUT": p["dem_truncated"], "OUTPUT": str(out / "t.tif")},
            d, out, r"Raster '.*dem_truncated\.tif' " + damaged)
    refused("change_stack", {"PRE": [p["pre_s1_truncated"]], "POST": [p["post_s1"]], "PRESET": 2,
                             "OUTPUT": str(out / "s.tif")}, d, out, r"Raster '.*pre_s1_truncated\.tif' " + damaged)
    # evaluate decodes with several threads, where GDAL turns a missing block into zeros without an error
    refused("evaluate", {"PREDICTION": p["prob_truncated"], "TRUTH": p["truth_gpkg"],
                         "OUTPUT_CONFUSION": str(out / "c.tif"), "OUTPUT_REPORT": str(out / "r.json")},
            d, out, r"Raster '.*prob_truncated\.tif' " + damaged, r"beyond the end of the file")


def test_a_truncated_chip_is_refused_naming_the_chip(landslide_provider, tmp_path, out):
    chips, _ = export_learnable_chips(tmp_path)
    image = sorted((chips / "images").glob("*.tif"))[3]
    image.write_bytes(image.read_bytes()[:image.stat().st_size // 2])
    refused("train", {"CHIPS": str(chips), "EPOCHS": 1, "OUTPUT": str(out / "model.lmpkg")},
            chips, out, rf"Raster '.*images/{image.name}' could not be read .*truncated or damaged")
    label = sorted((chips / "labels").glob("*.tif"))[0]
    shutil.copy(chips / "images" / "000000.tif", image)  # repair the image; damage a label chip instead
    label.write_bytes(label.read_bytes()[:100])
    refused("pixel_baseline", {"CHIPS": str(chips), "TREES": 2, "OUTPUT": str(out / "rf.lmpkg")},
            chips, out, rf"Raster '.*labels/{label.name}' could not be read")


# ------------------------------------------------------------------------------ vector labels outside their CRS
def test_vector_labels_whose_coordinates_do_not_fit_their_crs_are_refused(landslide_provider, data, out):
    d, p = data
    refused("export_chips", {"INPUT": p["stack"], "LABELS": p["labels_bad_crs"], "TILE_SIZE": 32,
                             "OUTPUT_FOLDER": str(out / "chips")},
            d, out, r"Label layer \(LABELS\) '.*labels_bad_crs\.gpkg': feature 1 has coordinates .* that do not fit "
                    r"the layer's CRS EPSG:4326", r"Assign projection")
    refused("evaluate", {"PREDICTION": p["prob"], "TRUTH": p["labels_bad_crs"], "OUTPUT_CONFUSION": str(out / "c.tif"),
                         "OUTPUT_REPORT": str(out / "r.json")},
            d, out, r"Truth layer \(TRUTH\) '.*labels_bad_crs\.gpkg': feature 1")


# ------------------------------------------------------------------------------------- unwritable output folder
@pytest.fixture
def unwritable(tmp_path):
    """A folder this user cannot write to (root writes anywhere, except into /proc/sys)."""
    if os.geteuid() != 0:
        folder = tmp_path / "read_only"
        folder.mkdir()
        folder.chmod(0o555)
        yield folder / "sub"
        folder.chmod(0o755)
    elif not os.access("/proc/sys", os.W_OK):
        yield Path("/proc/sys/landslide_mapper_test")
    else:
        pytest.skip("no folder here is unwritable for root")


def test_an_unwritable_output_folder_is_refused_before_any_work(landslide_provider, data, unwritable):
    d, p = data
    target = unwritable / "t.tif"
    message = refused("terrain", {"INPUT": p["dem"], "OUTPUT": str(target)}, d, unwritable)
    assert "OUTPUT" in message and str(unwritable.parent) in message and "not writable" in message
    assert not target.exists()


# ------------------------------------------------------------------------------ non-finite values and coordinates
def test_label_polygons_with_nan_coordinates_are_refused_naming_the_feature(landslide_provider, data, out, tmp_path):
    from osgeo import ogr, osr

    _, p = data
    inputs = tmp_path / "in"
    inputs.mkdir()
    path = inputs / "labels_nan.gpkg"
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32632)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = ds.CreateLayer("labels", srs, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("class", ogr.OFTInteger))
    ring = ogr.Geometry(ogr.wkbLinearRing)
    for x, y in [(np.nan, 6799000), (400500, np.nan), (400500, 6799500), (np.nan, 6799000)]:
        ring.AddPoint_2D(x, y)
    polygon = ogr.Geometry(ogr.wkbPolygon)
    polygon.AddGeometry(ring)
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetField("class", 1)
    feature.SetGeometry(polygon)
    layer.CreateFeature(feature)
    try:
        ds = None  # the layer's NaN extent cannot be stored when it is closed (the feature is)
    except RuntimeError:  # raised when GDAL exceptions are on (whichever test turned them on)
        pass
    refused("export_chips", {"INPUT": p["stack"], "LABELS": str(path), "TILE_SIZE": 32,
                             "OUTPUT_FOLDER": str(out / "chips")},
            inputs, out, r"Label layer \(LABELS\) '.*labels_nan\.gpkg': feature 1 has coordinates that are not "
                         r"numbers", r"Fix or delete that feature")


def test_infinite_values_in_change_stack_inputs_become_nodata_with_a_warning(landslide_provider, data, out, tmp_path):
    _, p = data
    with rasterio.open(p["pre_s1"]) as src:
        pre = src.read()
    pre[:, :8, :8] = np.inf
    pre[0, 8:16, :8] = -3.4028235e38  # an undeclared ArcGIS nodata value
    odd = write_raster(tmp_path / "pre_inf.tif", pre, ["VV", "VH"])
    log = logging_feedback()
    result = run("change_stack", {"PRE": [odd], "POST": [p["post_s1"]], "PRESET": 2, "OUTPUT": str(out / "s.tif")},
                 log)
    with rasterio.open(result["OUTPUT"]) as src:
        stack = src.read()
    assert not np.isinf(stack).any()  # preset setting3: pre_VV, post_VV
    assert np.isnan(stack[0, :16, :8]).all() and np.isfinite(stack[1]).all()
    assert np.isfinite(stack[0, 16:, :]).all() and np.isfinite(stack[0, :, 8:]).all()
    warned = [line for line in log.lines if line.startswith("Warning:")]
    assert any("pre_inf.tif' (PRE)" in w and "±Inf" in w and "taken as nodata" in w for w in warned), warned


def test_infinite_probabilities_are_refused_naming_file_and_range(landslide_provider, data, out, tmp_path):
    _, p = data
    with rasterio.open(p["prob"]) as src:
        prob = src.read(1)
    prob[:8, :8] = np.inf
    inputs = tmp_path / "in"
    inputs.mkdir()
    infinite = write_raster(inputs / "prob_inf.tif", prob, ["landslide_probability"], nodata=np.nan)
    refused("evaluate", {"PREDICTION": infinite, "TRUTH": p["truth"], "OUTPUT_CONFUSION": str(out / "c.tif"),
                         "OUTPUT_REPORT": str(out / "r.json")},
            inputs, out, r"Prediction '.*prob_inf\.tif' \(PREDICTION\) is read as a probability but holds values "
                         r"from [0-9.e-]+ to inf", r"between 0 and 1")
    refused("compare_predictions", {"PREDICTION_A": p["prob"], "PREDICTION_B": infinite, "TRUTH": p["truth"],
                                    "OUTPUT_COMPARISON": str(out / "cmp.tif"), "OUTPUT_REPORT": str(out / "cr.json")},
            inputs, out, r"'.*prob_inf\.tif' \(PREDICTION_B\) is read as a probability .* to inf")


# ------------------------------------------------------------------------------------ parameters out of reason
@pytest.mark.parametrize("params, pattern", [
    ({"Z_FACTOR": 0.0}, r"Z factor \(Z_FACTOR\) must be a positive number"),
    ({"Z_FACTOR": float("nan")}, r"Z factor \(Z_FACTOR\) must be a positive number"),
    ({"Z_FACTOR": -1.0}, r"Z factor \(Z_FACTOR\) must be a positive number"),
    ({"TPI_RADIUS": 1e9}, (r"TPI radius \(TPI_RADIUS\) reaches 1e\+08 pixels of DEM '.*dem\.tif' .* at most 1000 "
                           r"pixels .* smaller TPI_RADIUS")),
    ({"RELIEF_PIXELS": 10 ** 6}, r"\(RELIEF_PIXELS\) reaches 1e\+06 pixels .* smaller RELIEF_PIXELS"),
    ({"VALLEY_DEPTH_RADIUS": 1e9}, r"\(VALLEY_DEPTH_RADIUS\) reaches 1e\+08 pixels .* smaller VALLEY_DEPTH_RADIUS"),
])
def test_terrain_parameters_without_meaning_or_beyond_memory_are_refused(landslide_provider, data, out, params,
                                                                         pattern):
    d, p = data
    refused("terrain", {"INPUT": p["dem"], "OUTPUT": str(out / "t.tif"), **params}, d, out, pattern)


@pytest.mark.parametrize("size", [{"WIDTH": 2 ** 31 - 1}, {"HEIGHT": 2 ** 31 - 1}, {"WIDTH": 20000, "HEIGHT": 20000}])
def test_a_simulated_scene_too_large_for_memory_is_refused_naming_width_and_height(landslide_provider, data, out,
                                                                                   size):
    d, _ = data
    refused("simulate_event", {**size, "OUTPUT_FOLDER": str(out / "event")}, d, out,
            r"× HEIGHT\) is too large: at most 268,435,456 pixels", r"smaller WIDTH or HEIGHT")


@pytest.fixture(scope="module")
def learnable(tmp_path_factory):
    """(chip folder, stack) of the learnable scene (never written to by the tests)."""
    return export_learnable_chips(tmp_path_factory.mktemp("learnable"))


@pytest.mark.parametrize("channels, pattern", [
    ("0,0,0", r"Decoder channels \(DECODER_CHANNELS\) must be whole numbers from 1 to 4096, not 0,0,0"),
    ("16,-8,4", r"\(DECODER_CHANNELS\) must be whole numbers .* not 16,-8,4"),
    ("8", r"one decoder channel count per encoder level \(DECODER_CHANNELS\): 3 numbers"),
    ("a,b,c", r"Decoder channels \(DECODER_CHANNELS\) must be integers"),
])
def test_decoder_channels_that_cannot_build_a_network_are_refused(landslide_provider, learnable, out, channels,
                                                                  pattern):
    chips, _ = learnable
    refused("train", {"CHIPS": str(chips), "EPOCHS": 1, "ENCODER_DEPTH": 3, "DECODER_CHANNELS": channels,
                      "OUTPUT": str(out / "model.lmpkg")}, chips, out, pattern)


@pytest.mark.parametrize("rates", ["-1", "nan", "0.001,0", "inf"])
def test_ensemble_learning_rates_not_above_zero_are_refused_before_any_folder_is_made(landslide_provider, learnable,
                                                                                      out, rates):
    chips, _ = learnable
    refused("train_ensemble", {"CHIPS": str(chips), "ARCHITECTURES": [0], "LOSSES": [1], "LEARNING_RATES": rates,
                               "EPOCHS": 1, "OUTPUT": str(out / "ens.lmpkg")},
            chips, out, r"Learning rates \(LEARNING_RATES\) must be finite numbers above 0")
    assert not (out / "ens.lmpkg.members").exists()


def test_a_baseline_whose_map_input_is_all_nodata_leaves_no_package_nor_onnx_cache(landslide_provider, learnable,
                                                                                   data, out):
    chips, _ = learnable
    d, p = data
    refused("pixel_baseline", {"CHIPS": str(chips), "TREES": 2, "MAX_PIXELS": 2000, "INPUT": p["stack_nan"],
                               "OUTPUT_MASK": str(out / "mask.tif"), "OUTPUT": str(out / "rf.lmpkg")},
            d, out, r"no valid pixel", r"stack_nan\.tif', INPUT")
