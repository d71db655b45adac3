"""predict on Dask (issue 19) as users call it: qgis_process with DASK_SCHEDULER, processing.run with WORKERS; the
maps equal the in-process ones bit for bit; a bad address is one clear sentence."""
from __future__ import annotations

import numpy as np
import pytest
import rasterio
from support import constant_package, write_raster

pytest.importorskip("distributed")
BANDS = ["pre_VV", "post_VV", "dNDVI"]


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cluster")
    rng = np.random.default_rng(3)
    data = rng.normal(size=(3, 150, 97)).astype(np.float32)
    data[:, 30:40, 10:30] = np.nan
    stack = write_raster(folder / "stack.tif", data, BANDS, nodata=np.nan)
    return folder, stack, constant_package(folder / "c.lmpkg", BANDS, logit=0.7, tile_size=64)


def _params(package, stack, out, **more):
    return {"PACKAGE": package, "INPUT": stack, "OUTPUT_PROBABILITY": str(out / "p.tif"),
            "OUTPUT_MASK": str(out / "m.tif"), "ENGINE": "onnx", "DEVICE": "cpu", **more}


def _read(out):
    with rasterio.open(out / "p.tif") as p, rasterio.open(out / "m.tif") as m:
        return p.read(1).view(np.uint32), m.read(1)


def test_workers_equal_in_process(landslide_provider, scene, tmp_path):
    import processing

    _, stack, package = scene
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    processing.run("landslide_mapper:predict", _params(package, stack, tmp_path / "one"))
    processing.run("landslide_mapper:predict", _params(package, stack, tmp_path / "two", WORKERS=2))
    a, b = _read(tmp_path / "one"), _read(tmp_path / "two")
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["m.tif", "p.tif"]


def test_bad_scheduler_address_is_a_clear_message(landslide_provider, scene, tmp_path, monkeypatch):
    import processing
    from landslide_mapper.core.predict import distributed
    from qgis.core import QgsProcessingException

    monkeypatch.setattr(distributed, "CONNECT_TIMEOUT", 2)
    _, stack, package = scene
    with pytest.raises(QgsProcessingException, match=r"Could not connect to the Dask scheduler at "
                                                     r"'tcp://127.0.0.1:9' \(DASK_SCHEDULER\)") as err:
        processing.run("landslide_mapper:predict", _params(package, stack, tmp_path,
                                                           DASK_SCHEDULER="tcp://127.0.0.1:9"))
    assert "Traceback" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.qgis_process
def test_qgis_process_on_a_running_scheduler(scene, tmp_path, qgis_process_profile, run_qgis_process):
    from distributed import LocalCluster

    _, stack, package = scene
    (tmp_path / "ref").mkdir()
    (tmp_path / "dask").mkdir()
    from landslide_mapper.core.predict import sliding_window_predict
    from landslide_mapper.models.package import read_package

    sliding_window_predict(read_package(package), stack, tmp_path / "ref" / "p.tif", tmp_path / "ref" / "m.tif",
                           engine="onnx", device="cpu")
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None) as cluster:
        args = [f"{k}={v}" for k, v in _params(package, stack, tmp_path / "dask",
                                               DASK_SCHEDULER=cluster.scheduler_address).items()]
        result = run_qgis_process(["run", "landslide_mapper:predict", "--", *args], qgis_process_profile)
    assert result.returncode == 0, result.stdout + result.stderr
    a, b = _read(tmp_path / "ref"), _read(tmp_path / "dask")
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@pytest.mark.qgis_process
def test_qgis_process_with_local_workers(scene, tmp_path, qgis_process_profile, run_qgis_process):
    """Inside qgis_process the process is QGIS and sys.executable a guess: local workers must still start."""
    from landslide_mapper.core.predict import sliding_window_predict
    from landslide_mapper.models.package import read_package

    _, stack, package = scene
    (tmp_path / "ref").mkdir()
    (tmp_path / "local").mkdir()
    sliding_window_predict(read_package(package), stack, tmp_path / "ref" / "p.tif", tmp_path / "ref" / "m.tif",
                           engine="onnx", device="cpu")
    args = [f"{k}={v}" for k, v in _params(package, stack, tmp_path / "local", WORKERS=2).items()]
    result = run_qgis_process(["run", "landslide_mapper:predict", "--", *args], qgis_process_profile)
    assert result.returncode == 0, result.stdout + result.stderr
    a, b = _read(tmp_path / "ref"), _read(tmp_path / "local")
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert sorted(p.name for p in (tmp_path / "local").iterdir()) == ["m.tif", "p.tif"]
