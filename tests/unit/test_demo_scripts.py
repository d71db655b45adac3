"""The newcomer's commands: `make demo` reuses a model trained with the same settings and clears what a new model
makes stale; `make demo-iburi` without its data fails and says what data it needs and where it comes from."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _demo():
    spec = importlib.util.spec_from_file_location("demo_script", ROOT / "scripts" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_model_is_reused_only_with_the_same_settings_and_code(tmp_path):
    demo = _demo()
    key = demo.fingerprint({"size": 2000, "seed": 2018, "train": {"EPOCHS": 12}})
    assert key == demo.fingerprint({"seed": 2018, "size": 2000, "train": {"EPOCHS": 12}})
    assert key != demo.fingerprint({"size": 2000, "seed": 2018, "train": {"EPOCHS": 13}})
    assert demo.reusable_model(tmp_path, key) is None  # nothing trained yet
    (tmp_path / "model.lmpkg").write_bytes(b"a package")
    (tmp_path / "model.lmpkg.demo.json").write_text(json.dumps({"fingerprint": key, "F1": 0.9, "THRESHOLD": 0.5}))
    assert demo.reusable_model(tmp_path, key)["F1"] == 0.9
    assert demo.reusable_model(tmp_path, "other settings") is None
    (tmp_path / "model.lmpkg").unlink()
    assert demo.reusable_model(tmp_path, key) is None  # the record alone is not a model


def test_a_new_model_clears_the_old_onnx_cache_and_nothing_else(tmp_path):
    demo = _demo()
    cache = tmp_path / "model.lmpkg.onnx"
    cache.mkdir()
    (cache / "olddigest-member0.onnx").write_bytes(b"stale")
    (tmp_path / "notes.txt").write_text("the user's")
    assert demo.clear_stale(tmp_path) == ["model.lmpkg.onnx"]
    assert not cache.exists() and (tmp_path / "notes.txt").read_text() == "the user's"
    assert demo.clear_stale(tmp_path) == []


def test_out_help_says_what_happens_to_the_folder():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py"), "--help"], capture_output=True,
                            text=True, timeout=60, env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "(replaced)" not in text and "reused" in text and "other files are left alone" in text


def test_iburi_demo_without_its_data_fails_and_says_what_it_needs(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "iburi_demo.py"), "--data", str(tmp_path),
                             "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, QT_QPA_PLATFORM="offscreen",
                                     PYTHONPATH=str(ROOT / ".build" / "import")))
    assert result.returncode != 0
    assert "Iburi 2018 Sentinel-2" in result.stderr and "../shared/data/iburi_2018_s2" in result.stderr
    assert "MIT" in result.stderr and "--data" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
