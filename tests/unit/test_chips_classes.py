"""Multi-class chips: the class table (values, names, colours) survives export_chips in both layouts, ArcGIS
Classified Tiles are read back with several classes, and a multi-class model trains on them."""
import json

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from landslide_mapper.core.chips import export_chips, load_chips
from landslide_mapper.core.chips.export import Sampling, SplitOptions
from landslide_mapper.core.training import TrainConfig, train_model
from landslide_mapper.models.package import read_package

TABLE = [{"value": 0, "name": "background", "color": "#f0e6c8"},
         {"value": 2, "name": "bedrock", "color": "#7f7f7f"},
         {"value": 5, "name": "wetland", "color": "#1f78b4"},
         {"value": 7, "name": "ravine", "color": "#b2182b"}]


def _scene(tmp_path, size=128):
    """Stack whose first band holds the class value of each pixel (so chips can be checked against labels)."""
    rows, cols = np.mgrid[0:size, 0:size]
    values = np.array([0, 2, 5, 7], dtype=np.uint8)[((rows // 11) + (cols // 13)) % 4]
    transform = from_origin(500000, 7000000, 10, 10)
    profile = dict(driver="GTiff", width=size, height=size, crs="EPSG:32633", transform=transform)
    with rasterio.open(tmp_path / "stack.tif", "w", count=2, dtype="float32", **profile) as dst:
        dst.write(np.stack([values.astype(np.float32), np.random.default_rng(0).normal(size=(size, size))]))
        dst.descriptions = ("elevation", "slope")
    with rasterio.open(tmp_path / "labels.tif", "w", count=1, dtype="uint8", nodata=255, **profile) as dst:
        dst.write(values[None])
        dst.update_tags(LANDSLIDE_MAPPER_CLASSES=json.dumps(TABLE))
    return tmp_path / "stack.tif", tmp_path / "labels.tif"


@pytest.mark.parametrize("layout", ["arcgis", "native"])
def test_three_classes_round_trip_with_names_and_colours(tmp_path, layout):
    stack, labels = _scene(tmp_path)
    export = export_chips(stack, labels, tmp_path / "chips", tile_size=32, sampling=Sampling(stride=32),
                          splits=SplitOptions(validation_fraction=0.25, block=64), layout=layout, preview=False)
    assert [(c.value, c.name, c.color) for c in export.classes] == [(c["value"], c["name"], c["color"])
                                                                    for c in TABLE[1:]]
    if layout == "arcgis":
        emd = json.loads((tmp_path / "chips" / "esri_model_definition.emd").read_text())
        assert [(c["Value"], c["Name"], c["Color"]) for c in emd["Classes"]] == \
            [(2, "bedrock", [127, 127, 127]), (5, "wetland", [31, 120, 180]), (7, "ravine", [178, 24, 43])]
    chips = load_chips(tmp_path / "chips", task="multiclass")
    table = chips.manifest["classes"]
    assert [(c["value"], c["name"]) for c in table] == [(0, "background"), (2, "bedrock"), (5, "wetland"),
                                                         (7, "ravine")]
    assert chips.manifest["task"] == "multiclass"
    values = np.array([c["value"] for c in table])
    assert set(np.unique(chips.labels)) == {0, 1, 2, 3}
    np.testing.assert_array_equal(values[chips.labels], chips.images[:, 0])  # each pixel kept its own class
    binary = load_chips(tmp_path / "chips", landslide_classes="wetland")
    np.testing.assert_array_equal(binary.labels, (chips.images[:, 0] == 5).astype(np.uint8))


def test_multiclass_model_trains_and_packages_its_class_table(tmp_path):
    stack, labels = _scene(tmp_path)
    export_chips(stack, labels, tmp_path / "chips", tile_size=32, sampling=Sampling(stride=32),
                 splits=SplitOptions(validation_fraction=0.25, block=64), preview=False)
    config = TrainConfig(epochs=2, batch_size=4, task="multiclass", loss="focal", class_weights=[0.5, 1, 1, 1],
                         model_kwargs={"encoder_depth": 3, "decoder_channels": [16, 8, 8]}, device="cpu",
                         checkpoints=False)
    result = train_model(tmp_path / "chips", tmp_path / "m.lmpkg", config)
    package = read_package(result.package)
    assert package.is_multiclass and package.manifest["out_channels"] == 4
    assert [c["name"] for c in package.classes] == ["background", "bedrock", "wetland", "ravine"]
    assert package.manifest["validation_metrics"]["macro_f1"] == pytest.approx(result.validation["f1"])
    assert [r["name"] for r in package.manifest["validation_classes"]] == ["background", "bedrock", "wetland",
                                                                           "ravine"]
    assert package.manifest["training"]["task"] == "multiclass"
