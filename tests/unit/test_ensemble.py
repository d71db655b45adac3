"""Ensembles: the top K by validation F1, a leaderboard, one package of K members, and resumable grids."""
import csv

import pytest
import torch

from landslide_mapper.core.chips import Sampling, SplitOptions, export_chips
from landslide_mapper.core.ensemble import EnsembleConfig, member_configs, select_top_k, train_ensemble
from landslide_mapper.common.errors import InputError
from landslide_mapper.core.training import TrainConfig
from landslide_mapper.models.package import read_package


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def test_top_k_are_the_highest_validation_f1_with_ties_broken_by_mcc():
    rows = [{"member": "a", "val_f1": "0.61", "mcc": "0.5"}, {"member": "b", "val_f1": 0.72, "mcc": 0.6},
            {"member": "c", "val_f1": None, "mcc": 0.9}, {"member": "d", "val_f1": 0.61, "mcc": 0.7},
            {"member": "e", "val_f1": float("nan")}, {"member": "f", "val_f1": 0.55, "mcc": 0.9}]
    assert [r["member"] for r in select_top_k(rows, 3)] == ["b", "d", "a"]
    assert [r["member"] for r in select_top_k(rows, 10)] == ["b", "d", "a", "f"]  # unscored members never chosen


def test_the_ensemble_keeps_the_top_k_prefix_that_scores_best_on_validation():
    from landslide_mapper.core.ensemble import best_prefix

    assert best_prefix([0.60, 0.66, 0.64]) == 2
    assert best_prefix([0.70, 0.66, 0.64]) == 1  # no mean beats the best member: keep it alone
    assert best_prefix([0.60, 0.66, 0.66]) == 3  # ties: the larger ensemble
    assert best_prefix([float("nan"), 0.1]) == 2
    with pytest.raises(InputError):
        best_prefix([])


def test_the_grid_is_architectures_times_losses_times_learning_rates():
    grid = member_configs(EnsembleConfig(architectures=["Unet", "PSPNet", "ResUNet"], losses=["dice", "lovasz"],
                                         learning_rates=[0.01, 0.001]))
    assert len(grid) == 12 and grid[0][0] == "Unet_dice_lr0.01" and grid[-1][0] == "ResUNet_lovasz_lr0.001"
    assert grid[0][1].model_kwargs["encoder_depth"] == 3  # compact networks by default
    with pytest.raises(InputError, match="Unknown architecture"):
        member_configs(EnsembleConfig(architectures=["Unet", "Transformer"]))


def test_ensemble_packages_the_top_k_members_writes_a_leaderboard_and_skips_trained_members(tmp_path):
    from support import learnable_scene

    stack, labels = learnable_scene(tmp_path)
    export_chips(
        stack,
        labels,
        tmp_path / "chips",
        tile_size=32,
        sampling=Sampling(stride=32),
        splits=SplitOptions(block=64, validation_fraction=0.25),
    )
    config = EnsembleConfig(architectures=["Unet", "Linknet"], losses=["dice", "bce"], learning_rates=[3e-3],
                            top_k=2, decoder_width=4,
                            base=TrainConfig(encoder="tu-resnet10t", epochs=2, batch_size=4, iterations_per_epoch=2))
    result = train_ensemble(tmp_path / "chips", tmp_path / "ens.lmpkg", config)

    with open(result.leaderboard, newline="") as f:
        board = list(csv.DictReader(f))
    members, ensemble_row = board[:-1], board[-1]
    kept = len(result.selected)  # the top 2, or the top 1 alone when it scores better on validation
    assert kept in (1, 2) and len(members) == 4 and ensemble_row["member"] == f"ENSEMBLE (top {kept})"
    f1s = [float(r["val_f1"]) for r in members]
    assert f1s == sorted(f1s, reverse=True) and [r["rank"] for r in members] == ["1", "2", "3", "4"]
    assert float(ensemble_row["val_f1"]) >= f1s[0] - 1e-4  # never below its best member on validation
    assert {"precision", "recall", "mcc", "seconds"} <= set(members[0])
    top = [r["member"] for r in members[:kept]]
    assert result.selected == top
    assert [r["selected"] for r in members] == ["True"] * kept + ["False"] * (4 - kept)

    pkg = read_package(result.package)
    assert [m["name"] for m in pkg.manifest["members"]] == top and len(pkg.networks) == kept
    assert pkg.manifest["validation_metrics"]["f1"] == pytest.approx(float(ensemble_row["val_f1"]), abs=1e-4)
    member = read_package(tmp_path / "ens.lmpkg.members" / f"{top[0]}.lmpkg").networks[0].state_dict()
    assert all(torch.equal(member[k], pkg.networks[0].state_dict()[k]) for k in member)

    # Run again: nothing is retrained, the same members are chosen.
    messages = []

    class Log:
        def set_progress(self, p): pass
        def log(self, m): messages.append(m)
        def is_canceled(self): return False

    again = train_ensemble(tmp_path / "chips", tmp_path / "ens.lmpkg", config, progress=Log())
    assert sum("already trained" in m for m in messages) == 4 and not any("training." in m for m in messages)
    assert again.selected == result.selected
