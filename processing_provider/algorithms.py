"""Every algorithm the provider offers, in toolbox order. Ids are stable API (DESIGN.md)."""
from .alg_change_stack import ChangeStackAlgorithm
from .alg_compare_predictions import ComparePredictionsAlgorithm
from .alg_evaluate import EvaluateAlgorithm
from .alg_export_chips import ExportChipsAlgorithm
from .alg_package_info import PackageInfoAlgorithm
from .alg_pixel_baseline import PixelBaselineAlgorithm
from .alg_predict import PredictAlgorithm
from .alg_s1_composite import S1CompositeAlgorithm
from .alg_s2_composite import S2CompositeAlgorithm
from .alg_simulate_event import SimulateEventAlgorithm
from .alg_simulate_geology import SimulateGeologyAlgorithm
from .alg_terrain import TerrainAlgorithm
from .alg_train import TrainAlgorithm
from .alg_train_ensemble import TrainEnsembleAlgorithm

ALGORITHMS = [
    SimulateEventAlgorithm,
    SimulateGeologyAlgorithm,
    S2CompositeAlgorithm,
    S1CompositeAlgorithm,
    TerrainAlgorithm,
    ChangeStackAlgorithm,
    ExportChipsAlgorithm,
    TrainAlgorithm,
    TrainEnsembleAlgorithm,
    PixelBaselineAlgorithm,
    PackageInfoAlgorithm,
    PredictAlgorithm,
    EvaluateAlgorithm,
    ComparePredictionsAlgorithm,
]
