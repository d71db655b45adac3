"""Fixtures of the dock tests: a small simulated event, its change stack, a demo model package, a clean project."""
from __future__ import annotations

import pytest

STACK_BANDS = ["pre_VV", "post_VV", "dNDVI"]
SCENE = 128  # pixels per side: two 64 px model tiles, and enough blocks for a chip split


@pytest.fixture(scope="session")
def demo_scene(tmp_path_factory):
    """Simulated event (pre/post S1 and S2, DEM, truth) plus its setting2 change stack."""
    from landslide_mapper.core.simulate import simulate_event
    from landslide_mapper.core.stack import build_change_stack

    folder = tmp_path_factory.mktemp("demo_scene")
    event = simulate_event(folder, width=SCENE, height=SCENE, seed=3)
    stack = build_change_stack([event.pre_s1, event.pre_s2], [event.post_s1, event.post_s2], folder / "stack.tif",
                               "setting2")
    return event, str(stack)


@pytest.fixture(scope="session")
def demo_package(tmp_path_factory):
    """A real smp U-Net package for the stack bands whose output is a flat 0.73 probability (logit 1)."""
    from support import constant_package

    return constant_package(tmp_path_factory.mktemp("demo_package") / "demo.lmpkg", STACK_BANDS, logit=1.0,
                            tile_size=64, threshold=0.5)


@pytest.fixture
def project(qgis_iface):
    """The QGIS project, emptied before and after the test (layers and groups)."""
    from qgis.core import QgsProject

    instance = QgsProject.instance()
    instance.clear()
    yield instance
    instance.clear()


@pytest.fixture
def isolated_settings(tmp_path, monkeypatch):
    """Recent packages and the run folder live in this test's temp folder, not in the user's QGIS settings."""
    from qgis.core import QgsSettings

    from landslide_mapper.ui import common

    settings = QgsSettings()
    saved = {key: settings.value(key) for key in (common.RECENT_PACKAGES, common.RUN_FOLDER)}
    settings.setValue(common.RECENT_PACKAGES, [])
    settings.setValue(common.RUN_FOLDER, str(tmp_path / "runs"))
    yield tmp_path / "runs"
    for key, value in saved.items():
        if value is None:
            settings.remove(key)
        else:
            settings.setValue(key, value)


@pytest.fixture
def wait_for_chain(qtbot):
    """Wait until a dock's AlgorithmChain has finished and no task of the task manager is left running."""
    from qgis.core import QgsApplication

    def wait(chain, timeout_ms: int = 60000):
        qtbot.waitUntil(lambda: chain.done and QgsApplication.taskManager().countActiveTasks() == 0,
                        timeout=timeout_ms)
        return chain

    return wait
