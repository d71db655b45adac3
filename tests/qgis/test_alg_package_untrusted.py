"""Hostile model packages through processing.run and qgis_process: package_info and predict refuse them with a
QgsProcessingException that names the field, leave the package byte-for-byte unchanged and write no output."""
from __future__ import annotations

import copy
import hashlib
import json
import struct
import zipfile

import numpy as np
import pytest
from support import constant_package, write_raster

BANDS = ["pre_VV", "post_VV", "dNDVI"]


def _encoder_weights(m):
    m["members"][0]["model_kwargs"]["encoder_weights"] = "/etc/passwd"


def _nan_threshold(m):
    m["threshold"] = "NaN"


def _negative_tile(m):
    m["tile_size"] = -5


def _weights_outside(m):
    m["members"][0]["weights"] = "../weights.safetensors"


# name → (change to model.json, extra zip entries, forged declared size of the weights, expected message)
CASES = {
    "encoder_weights": (_encoder_weights, {}, None, r"field 'members\[0\]\.model_kwargs\.encoder_weights'"),
    "nan_threshold": (_nan_threshold, {}, None, r"field 'threshold' must be a number between 0 and 1, not 'NaN'"),
    "negative_tile": (_negative_tile, {}, None, r"field 'tile_size' must be a multiple of 32"),
    "weights_outside": (_weights_outside, {}, None, r"field 'members\[0\]\.weights' must be a plain file name"),
    "nested_zip": (None, {"inner.zip": b"PK\x05\x06" + bytes(18)}, None, "nested archives are refused"),
    "declared_size": (None, {}, 3 << 30, "entry 'weights.safetensors' declares 3,221,225,472 bytes"),
}


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    path = constant_package(tmp_path_factory.mktemp("good") / "good.lmpkg", BANDS)
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("model.json")), zf.read("weights.safetensors")


def hostile(folder, good, case: str):
    """The good package turned hostile as CASES[case] says; returns (path, expected message)."""
    change, extra, declared, message = CASES[case]
    manifest = copy.deepcopy(good[0])
    if change:
        change(manifest)
    path = folder / f"{case}.lmpkg"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model.json", json.dumps(manifest), compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr("weights.safetensors", good[1])
        for name, data in extra.items():
            zf.writestr(name, data)
    if declared:  # rewrite the uncompressed size in the entry table record of the weights
        data = bytearray(path.read_bytes())
        at = data.find(b"PK\x01\x02")
        while data[at + 46:at + 46 + 19] != b"weights.safetensors":
            at = data.find(b"PK\x01\x02", at + 4)
        struct.pack_into("<L", data, at + 24, declared)
        path.write_bytes(bytes(data))
    return path, message


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def listing(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def folders(tmp_path):
    """(package folder, input folder, output folder): QGIS may add .aux.xml beside inputs, never beside outputs."""
    out = [tmp_path / name for name in ("package", "input", "output")]
    for folder in out:
        folder.mkdir()
    return out


def run(alg, params):
    import processing

    return processing.run(f"landslide_mapper:{alg}", params)


@pytest.mark.parametrize("case", list(CASES))
def test_package_info_refuses_a_hostile_package(landslide_provider, good, tmp_path, case):
    from qgis.core import QgsProcessingException

    path, message = hostile(tmp_path, good, case)
    digest, before = sha(path), listing(tmp_path)
    with pytest.raises(QgsProcessingException, match=message) as info:
        run("package_info", {"PACKAGE": str(path)})
    assert path.name in str(info.value) and "Traceback" not in str(info.value)
    assert sha(path) == digest and listing(tmp_path) == before


@pytest.mark.parametrize("case", ["encoder_weights", "nan_threshold", "weights_outside", "declared_size"])
def test_predict_refuses_a_hostile_package_and_writes_nothing(landslide_provider, good, tmp_path, case):
    from qgis.core import QgsProcessingException

    package, inputs, output = folders(tmp_path)
    path, message = hostile(package, good, case)
    stack = write_raster(inputs / "stack.tif", np.zeros((3, 64, 64), np.float32), BANDS)
    digest = sha(path)
    with pytest.raises(QgsProcessingException, match=message):
        run("predict", {"PACKAGE": str(path), "INPUT": stack, "OUTPUT_PROBABILITY": str(output / "p.tif"),
                        "OUTPUT_MASK": str(output / "m.tif"), "OUTPUT_POLYGONS": str(output / "poly.gpkg")})
    # the package unchanged, no ONNX cache beside it, no output or temp file
    assert sha(path) == digest and listing(package) == [path.name] and listing(output) == []


@pytest.mark.qgis_process
@pytest.mark.parametrize("alg, case", [("package_info", "nan_threshold"), ("predict", "encoder_weights")])
def test_qgis_process_refuses_a_hostile_package_without_a_traceback(qgis_process_profile, run_qgis_process, good,
                                                                    tmp_path, alg, case):
    import re

    package, inputs, output = folders(tmp_path)
    path, message = hostile(package, good, case)
    args = [f"PACKAGE={path}"]
    if alg == "predict":
        stack = write_raster(inputs / "stack.tif", np.zeros((3, 64, 64), np.float32), BANDS)
        args += [f"INPUT={stack}", f"OUTPUT_PROBABILITY={output / 'p.tif'}", f"OUTPUT_MASK={output / 'm.tif'}"]
    digest = sha(path)
    result = run_qgis_process(["run", f"landslide_mapper:{alg}", "--", *args], qgis_process_profile)
    text = result.stdout + result.stderr
    assert result.returncode != 0, text
    assert re.search(message, text), text
    assert "Traceback" not in text, text
    assert sha(path) == digest and listing(package) == [path.name] and listing(output) == []
