"""A model package is untrusted input: hostile packages are refused with one clear message naming the field.

Every case is refused the same way by the model card's reader (models.manifest.read_manifest, no torch) and by
read_package (package_info, predict); the package file is unchanged afterwards and nothing is left beside it.
"""
import copy
import hashlib
import json
import re
import struct
import zipfile

import pytest
import torch
from support import constant_package

from landslide_mapper.common.errors import InputError
from landslide_mapper.models import manifest as schema
from landslide_mapper.models.forest import FOREST_ARCHITECTURES, PixelForest
from landslide_mapper.models.manifest import read_manifest
from landslide_mapper.models.package import make_manifest, read_package, write_package
from landslide_mapper.models.registry import ARCHITECTURES, compact_kwargs, model_kwargs_for

BANDS = ["pre_VV", "post_VV", "dNDVI"]


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """(model.json as a dict, weights bytes) of a real, valid one-network package."""
    path = constant_package(tmp_path_factory.mktemp("good") / "good.lmpkg", BANDS)
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("model.json")), zf.read("weights.safetensors")


def _zip(path, files):
    """A zip of `files` (name → bytes or text); model.json deflated, the rest stored (fast for big weights)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED if name == "model.json" else None)
    return path


def _package(tmp_path, good, change=None, name="hostile.lmpkg", extra=None):
    """A package whose model.json is the good one after `change(manifest)`, with the good weights."""
    manifest, weights = copy.deepcopy(good[0]), good[1]
    if change is not None:
        manifest = change(manifest) or manifest
    return _zip(tmp_path / name, {"model.json": json.dumps(manifest), "weights.safetensors": weights,
                                  **(extra or {})})


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _refused(path, *patterns, readers=(read_manifest, read_package)):
    """Each reader refuses with an InputError naming the file and matching `patterns`; nothing changes on disk."""
    before = _sha(path), sorted(p.name for p in path.parent.iterdir())
    message = ""
    for reader in readers:
        with pytest.raises(InputError) as info:
            reader(path)
        message = str(info.value)
        assert path.name in message, message
        for pattern in patterns:
            assert re.search(pattern, message), message
    assert (_sha(path), sorted(p.name for p in path.parent.iterdir())) == before
    return message


def _set(key, value):
    def change(m):
        m[key] = value
    return change


def _kwargs(**kwargs):
    def change(m):
        m["members"][0]["model_kwargs"] = {**m["members"][0]["model_kwargs"], **kwargs}
    return change


# ---------------------------------------------------------------------------------------- what must still hold
def test_allow_list_knows_exactly_the_registry_architectures():
    assert set(schema.NETWORK_ARCHITECTURES) == set(ARCHITECTURES)
    assert tuple(schema.PIXEL_ARCHITECTURES) == tuple(FOREST_ARCHITECTURES)


def test_allow_list_accepts_every_model_kwargs_the_plugin_writes():
    for arch in ARCHITECTURES:
        written = [compact_kwargs(arch, d, w) for d in (3, 4) for w in (4, 8, 16)]
        written += [model_kwargs_for(arch, d) for d in (3, 4, 5)]
        if arch in ("Unet", "UnetPlusPlus", "MAnet"):
            written.append(model_kwargs_for(arch, 4, [128, 64, 32, 16]))
        for kwargs in written:
            member = {"architecture": arch, "encoder": "resnet18", "model_kwargs": kwargs,
                      "weights": "w.safetensors", "weight": 1.0}
            manifest = make_manifest(members=[member], input_bands=BANDS, band_stats=[
                {"name": b, "mean": 0.0, "std": 1.0} for b in BANDS], threshold=0.5,
                classes=[{"value": 1, "name": "landslide", "color": "#e8702a"}], pixel_size=(10.0, 10.0))
            assert schema.validate_manifest(json.loads(json.dumps(manifest)), "x.lmpkg") is not None


def test_the_good_package_reads(tmp_path, good):
    path = _package(tmp_path, good)
    assert read_manifest(path)["input_bands"] == BANDS
    assert read_package(path).input_bands == BANDS


# ---------------------------------------------------------------------------------- model_kwargs: allow-list
def test_encoder_weights_naming_a_local_file_is_refused_before_anything_is_opened(tmp_path, good, monkeypatch):
    from landslide_mapper.models import registry

    opened = []
    monkeypatch.setattr(registry, "load_encoder_weights", lambda *a: opened.append(a))
    monkeypatch.setattr(torch, "load", lambda *a, **k: opened.append(a))
    secret = tmp_path / "secret.pth"
    secret.write_bytes(b"not for the package to read")
    path = _package(tmp_path, good, _kwargs(encoder_weights=str(secret)))
    _refused(path, r"field 'members\[0\]\.model_kwargs\.encoder_weights'", "open a file")
    assert not opened


@pytest.mark.parametrize("kwargs, field", [
    ({"decoder_attention_type": "https://example.com/evil.py"}, "decoder_attention_type"),
    ({"decoder_interpolation": "file:///etc/passwd"}, "decoder_interpolation"),
    ({"activation": "builtins.exec"}, "activation"),
    ({"aux_params": {"classes": 5}}, "aux_params"),
], ids=["url-in-choice", "file-url", "callable-name", "aux-params"])
def test_urls_and_callables_in_model_kwargs_are_refused(tmp_path, good, kwargs, field):
    path = _package(tmp_path, good, _kwargs(**kwargs))
    _refused(path, rf"field 'members\[0\]\.model_kwargs\.{field}'")


@pytest.mark.parametrize("kwargs, field", [
    ({"pretrained_cfg_overlay": {"file": "/etc/passwd"}}, "pretrained_cfg_overlay"),
    ({"in_channels": 99}, "in_channels"),
    ({"filters": [8, 16]}, "filters"),  # a ResUNet setting on a Unet
], ids=["encoder-kwargs", "in-channels", "other-architecture"])
def test_unknown_model_kwargs_are_refused_and_the_allowed_ones_listed(tmp_path, good, kwargs, field):
    path = _package(tmp_path, good, _kwargs(**kwargs))
    _refused(path, rf"field 'members\[0\]\.model_kwargs\.{field}' is not a setting", "decoder_channels")


@pytest.mark.parametrize("kwargs, field", [
    ({"encoder_depth": "3"}, "encoder_depth"),
    ({"encoder_depth": 50}, "encoder_depth"),
    ({"encoder_depth": True}, "encoder_depth"),
    ({"decoder_channels": [32, 16, 10 ** 9]}, "decoder_channels"),
    ({"decoder_channels": "32,16,8"}, "decoder_channels"),
], ids=["depth-string", "depth-range", "depth-bool", "huge-channels", "channels-string"])
def test_model_kwargs_values_are_typed_and_bounded(tmp_path, good, kwargs, field):
    path = _package(tmp_path, good, _kwargs(**kwargs))
    _refused(path, rf"field 'members\[0\]\.model_kwargs\.{field}' must be")


@pytest.mark.parametrize("encoder", ["hf-hub:evil/model", "tu-hf_hub:evil/model", "../../resnet", "", 7, None])
def test_encoder_must_be_a_plain_name(tmp_path, good, encoder):
    def change(m):
        m["members"][0]["encoder"] = encoder
    _refused(_package(tmp_path, good, change), r"field 'members\[0\]\.encoder' must be an encoder name")


# ---------------------------------------------------------------------------------------- manifest schema
@pytest.mark.parametrize("value", [float("nan"), "NaN", "0.5", 1.5, -0.1, float("inf"), True, None, [0.5]],
                         ids=["nan", "nan-string", "string", "above-1", "negative", "inf", "bool", "null", "list"])
def test_threshold_must_be_a_finite_number_between_0_and_1(tmp_path, good, value):
    message = _refused(_package(tmp_path, good, _set("threshold", value)),
                       r"field 'threshold' must be a number between 0 and 1, not ")
    if value == "NaN":
        assert message.endswith("not 'NaN'.")


@pytest.mark.parametrize("value", [-5, 0, 100, 10 ** 9, 64.0, "64", None],
                         ids=["negative", "zero", "not-32", "huge", "float", "string", "null"])
def test_tile_size_must_be_a_sane_multiple_of_32(tmp_path, good, value):
    _refused(_package(tmp_path, good, _set("tile_size", value)),
             r"field 'tile_size' must be a multiple of 32 pixels from 32 to 8192, not ")


@pytest.mark.parametrize("value", [10_000, 33, -1, 1.5, "8"])
def test_overlap_must_stay_below_half_a_tile(tmp_path, good, value):
    _refused(_package(tmp_path, good, _set("overlap", value)), r"field 'overlap' must be a whole number from 0 to 32")


@pytest.mark.parametrize("key", ["schema_version", "task", "input_bands", "normalization", "tile_size", "threshold",
                                 "classes", "members"])
def test_a_missing_required_field_is_named(tmp_path, good, key):
    def change(m):
        del m[key]
    _refused(_package(tmp_path, good, change), rf"lacks the required field\(s\) {key}")


@pytest.mark.parametrize("bands, field", [
    (["pre_VV", "post_VV", "pre_vv"], r"input_bands\[2\]' repeats band 'pre_vv'"),
    ([], "input_bands' must be a list of 1 to"),
    (["pre_VV", 5, "dNDVI"], r"input_bands\[1\]' must be a band name"),
    (["pre_VV", "x" * 500, "dNDVI"], r"input_bands\[1\]' must be a band name"),
    (["pre_VV", "post\nVV", "dNDVI"], r"input_bands\[1\]' must be a band name"),
    ("pre_VV,post_VV", "input_bands' must be a list"),
], ids=["duplicate", "empty", "number", "long", "control-char", "string"])
def test_input_bands_are_unique_names(tmp_path, good, bands, field):
    _refused(_package(tmp_path, good, _set("input_bands", bands)), "field '" + field)


@pytest.mark.parametrize("stats, field", [
    ({"mean": float("nan"), "std": 1.0}, r"normalization\.dNDVI\.mean' must be a finite number"),
    ({"mean": 0.0, "std": 0.0}, r"normalization\.dNDVI\.std' must be a finite number > 0"),
    ({"mean": 0.0, "std": "1"}, r"normalization\.dNDVI\.std'"),
    ({"mean": 1e300, "std": 1.0}, r"normalization\.dNDVI\.mean'"),
    ({"mean": 0.0}, "no normalisation statistics.*dNDVI"),
], ids=["nan-mean", "zero-std", "string-std", "float32-overflow", "no-std"])
def test_normalisation_statistics_are_finite(tmp_path, good, stats, field):
    def change(m):
        m["normalization"]["dNDVI"] = stats
    _refused(_package(tmp_path, good, change), field)


@pytest.mark.parametrize("classes, field", [
    ("landslide", "classes' must be a list"),
    ([{"value": "1", "name": "landslide"}], r"classes\[0\]\.value' must be a whole number"),
    ([{"value": 1, "name": "a"}, {"value": 1, "name": "b"}], r"classes\[1\]\.value' repeats"),
    ([{"value": 1, "name": {"x": 1}}], r"classes\[0\]\.name'"),
    ([{"value": 1, "name": "a", "color": 5}], r"classes\[0\]\.color'"),
    ([5], r"classes\[0\]' must be an object"),
], ids=["string", "value-string", "duplicate-value", "name-object", "colour-number", "not-object"])
def test_class_table_is_checked(tmp_path, good, classes, field):
    _refused(_package(tmp_path, good, _set("classes", classes)), "field '" + field)


@pytest.mark.parametrize("weights", ["../weights.safetensors", "/etc/passwd", "sub/weights.safetensors",
                                     "..\\weights.safetensors", "weights.pt", "C:weights.safetensors",
                                     ".safetensors", 3])
def test_weights_must_be_a_plain_safetensors_file_name(tmp_path, good, weights):
    def change(m):
        m["members"][0]["weights"] = weights
    _refused(_package(tmp_path, good, change), r"field 'members\[0\]\.weights' must be a plain file name")


@pytest.mark.parametrize("change, field", [
    (_set("members", []), "members' must be a list of 1 to"),
    (_set("members", "Unet"), "members' must be a list"),
    (lambda m: m["members"][0].update(weight=float("nan")), r"members\[0\]\.weight' must be a number"),
    (lambda m: m["members"][0].update(weight=0.0), "members' must give at least one member a weight above 0"),
    (lambda m: m["members"][0].update(kind="python_code"), r"members\[0\]\.kind'"),
    (lambda m: m["members"][0].update(architecture="SegFormerXL"),
     r"members\[0\]\.architecture' names an unknown architecture 'SegFormerXL'"),
    (lambda m: m["members"][0].update(out_channels=4), r"members\[0\]\.out_channels'"),
    (lambda m: m["members"][0].update(validation_f1="great"), r"members\[0\]\.validation_f1'"),
    (_set("members", [{"architecture": "Unet"}] * 65), "members' must be a list of 1 to 64"),
], ids=["empty", "string", "nan-weight", "zero-weights", "unknown-kind", "unknown-arch", "multi-class",
        "f1-string", "too-many"])
def test_members_are_checked(tmp_path, good, change, field):
    _refused(_package(tmp_path, good, change), "field '" + field)


@pytest.mark.parametrize("change, field", [
    (_set("schema_version", "1"), "schema_version' must be a whole number"),
    (_set("task", "instance_segmentation"), "task' must be 'binary_segmentation' or 'multiclass_segmentation'"),
    (_set("pixel_size", [0, 10]), "pixel_size' must be null or two numbers > 0"),
    (_set("pixel_size", "10"), "pixel_size'"),
    (_set("validation_metrics", {"f1": "high"}), r"validation_metrics\.f1' must be a number or null"),
    (_set("training", {"seconds": "slow"}), r"training\.seconds' must be a number"),
    (_set("training", {"best_epoch": 2, "history": 3}), r"training\.history' must be a list"),
    (_set("provenance", "me"), "provenance' must be an object"),
    (_set("crs", 4326), "crs' must be null or a CRS"),
], ids=["schema-string", "task", "pixel-zero", "pixel-string", "f1-string", "seconds-string", "history-int",
        "provenance", "crs-number"])
def test_fields_the_summary_prints_are_typed(tmp_path, good, change, field):
    _refused(_package(tmp_path, good, change), "field '" + field)


@pytest.mark.parametrize("text, message", [
    ("[1, 2, 3]", "must be a JSON object, not a list"),
    ('"model"', "must be a JSON object"),
    ("null", "must be a JSON object"),
    ("{", "not valid JSON"),
    ("[" * 100_000 + "]" * 100_000, "not valid JSON: nested too deeply"),
    (b"\xff\xfe\x00garbage", "not valid JSON"),
], ids=["list", "string", "null", "truncated", "deeply-nested", "binary"])
def test_model_json_must_be_a_json_object(tmp_path, good, text, message):
    path = _zip(tmp_path / "j.lmpkg", {"model.json": text, "weights.safetensors": good[1]})
    _refused(path, message)


# ---------------------------------------------------------------------------------------------- the zip
def _forge_size(path, entry: str, size: int) -> None:
    """Rewrite the uncompressed size an entry's headers declare (local header and entry table)."""
    data = bytearray(path.read_bytes())
    name = entry.encode()
    for signature, offset, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        at = 0
        while (at := data.find(signature, at)) >= 0:
            if data[at + name_at:at + name_at + len(name)] == name:
                struct.pack_into("<L", data, at + offset, size)
            at += 4
    path.write_bytes(bytes(data))


def test_an_entry_declaring_more_than_the_cap_is_refused_before_reading(tmp_path, good):
    path = _package(tmp_path, good)
    _forge_size(path, "weights.safetensors", 3 << 30)
    _refused(path, "entry 'weights.safetensors' declares 3,221,225,472 bytes uncompressed", "at most")


def test_a_huge_model_json_is_refused_by_its_declared_size(tmp_path, good):
    padded = json.dumps(good[0]) + " " * (5 << 20)  # 5 MiB that deflate squeezes to a few KB
    path = _zip(tmp_path / "big.lmpkg", {"model.json": padded, "weights.safetensors": good[1]})
    with zipfile.ZipFile(path) as zf:
        assert zf.getinfo("model.json").compress_size < 1 << 20
    _refused(path, "entry 'model.json' declares 5,.* bytes uncompressed; model.json may hold at most 4,194,304")


def test_a_header_that_understates_the_size_cannot_inflate_past_it(tmp_path, good):
    padded = json.dumps(good[0]) + " " * (5 << 20)
    path = _zip(tmp_path / "liar.lmpkg", {"model.json": padded, "weights.safetensors": good[1]})
    _forge_size(path, "model.json", 1000)  # the header says 1000 bytes; the stream inflates to 5 MiB
    _refused(path, "entry 'model.json' is damaged|holds a different amount of data")


def test_too_many_entries_are_refused_before_the_entry_table_is_read(tmp_path, good):
    files = {"model.json": json.dumps(good[0]), "weights.safetensors": good[1]}
    files.update({f"note_{i}.txt": b"x" for i in range(300)})
    _refused(_zip(tmp_path / "many.lmpkg", files), "has 302 entries; a package may hold at most 256")


@pytest.mark.parametrize("entry", ["inner.zip", "weights.lmpkg", "data.tar", "w.safetensors.gz", "x.7z"])
def test_nested_archives_are_refused(tmp_path, good, entry):
    inner = tmp_path / "inner_src.zip"
    _zip(inner, {"model.json": json.dumps(good[0])})
    path = _package(tmp_path, good, extra={entry: inner.read_bytes()})
    inner.unlink()
    _refused(path, "nested archives are refused", re.escape(entry))


@pytest.mark.parametrize("entry", ["model.pkl", "weights.pt", "extra.pth", "x.ckpt", "arr.npy", "trees.joblib"])
def test_pickle_style_entries_are_refused(tmp_path, good, entry):
    import pickle

    path = _package(tmp_path, good, extra={entry: pickle.dumps({"a": 1})})
    _refused(path, "pickle-style file that could run code", re.escape(entry))


@pytest.mark.parametrize("entry", ["../evil.txt", "/etc/evil", "a/../../evil", "C:/evil", "..\\..\\evil"])
def test_zip_slip_paths_are_refused(tmp_path, good, entry):
    _refused(_package(tmp_path, good, extra={entry: b"x"}), "unsafe path")


def test_duplicate_entries_are_refused(tmp_path, good):
    path = _package(tmp_path, good)
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(path, "a") as zf:
        zf.writestr("model.json", json.dumps({**good[0], "threshold": 0.01}))
    _refused(path, "holds the entry 'model.json' twice")


def test_encrypted_and_unknown_compression_entries_are_refused(tmp_path, good):
    # In an entry-table record, the flags sit at byte 8 and the compression method at byte 10.
    for offset, value, message in ((8, 0x1, "is encrypted"), (10, 99, "compression method 99")):
        path = _package(tmp_path, good, name=f"c{value}.lmpkg")
        data = bytearray(path.read_bytes())
        at = data.find(b"PK\x01\x02")  # first entry of the table: model.json
        struct.pack_into("<H", data, at + offset, value)
        path.write_bytes(bytes(data))
        _refused(path, message)


def test_weights_listed_but_absent_are_refused_by_card_and_reader(tmp_path, good):
    path = _zip(tmp_path / "nw.lmpkg", {"model.json": json.dumps(good[0])})
    _refused(path, r"lists weights 'weights.safetensors' \(members\[0\]\.weights\) that are not in the zip")


def test_not_a_zip_and_a_damaged_zip_are_refused(tmp_path, good):
    text = tmp_path / "text.lmpkg"
    text.write_text("hello")
    _refused(text, "is not a Landslide Mapper model package")
    good_zip = _package(tmp_path, good, name="cut.lmpkg")
    data = good_zip.read_bytes()
    good_zip.write_bytes(data[:100] + data[-200:])  # entry table kept, entries cut away
    _refused(good_zip, "damaged|cannot be read|not a Landslide Mapper model package")


# ---------------------------------------------------------------------------------------------- the weights
def test_weights_that_are_not_safetensors_are_refused_by_the_reader(tmp_path, good):
    import pickle

    path = _zip(tmp_path / "p.lmpkg", {"model.json": json.dumps(good[0]),
                                       "weights.safetensors": pickle.dumps({"a": 1})})
    _refused(path, "not a valid safetensors file", readers=(read_package,))


def test_tree_weights_that_would_loop_forever_are_refused(tmp_path):
    from safetensors.torch import save

    from landslide_mapper.models.package import PIXEL_BASELINE

    forest = PixelForest([1, 1], [1, 1], [0, 0], [0.0, 0.0], [0.2, 0.2], [0], depth=1)
    member = {"kind": PIXEL_BASELINE, "architecture": "CART", "encoder": None, "weights": "forest.safetensors",
              "weight": 1.0}
    manifest = make_manifest(members=[member], input_bands=BANDS, band_stats=[
        {"name": b, "mean": 0.0, "std": 1.0} for b in BANDS], tile_size=64, threshold=0.5,
        classes=[{"value": 1, "name": "landslide"}])
    path = write_package(tmp_path / "trees.lmpkg", manifest, [forest.state_dict()])
    assert read_package(path).networks[0].n_trees == 1
    for i, (key, value, message) in enumerate((("depth", torch.tensor(10 ** 9), "claim a depth of 1000000000"),
                                               ("value", torch.tensor([0.2, float("nan")]), "leaf values"),
                                               ("roots", torch.tensor([], dtype=torch.int64), "hold no tree"),
                                               ("left", torch.tensor([0.5, 1.0]), "wrong type"))):
        state = {**forest.state_dict(), key: value}
        bad = _zip(tmp_path / f"t{i}.lmpkg", {"model.json": json.dumps(manifest),
                                             "forest.safetensors": save(state)})
        _refused(bad, message, readers=(read_package,))


def test_kwargs_that_pass_the_allow_list_but_not_the_network_are_a_clear_refusal(tmp_path, good):
    path = _package(tmp_path, good, _kwargs(decoder_channels=[32, 16, 8, 4, 2]))  # 5 levels for depth 3
    _refused(path, r"members\[0\].*Unet", readers=(read_package,))


def test_write_package_refuses_a_manifest_reading_would_refuse(tmp_path, good):
    manifest = {**good[0], "threshold": float("nan")}
    with pytest.raises(InputError, match="field 'threshold'"):
        write_package(tmp_path / "w.lmpkg", manifest, [{}])
    assert not list(tmp_path.iterdir())
