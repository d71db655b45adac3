"""Every algorithm the provider offers, in toolbox order. Ids are stable API (DESIGN.md)."""
from .alg_change_stack import ChangeStackAlgorithm
from .alg_evaluate import EvaluateAlgorithm
from .alg_export_chips import ExportChipsAlgorithm
from .alg_predict import PredictAlgorithm
from .alg_simulate_event import SimulateEventAlgorithm
from .alg_train import TrainAlgorithm

ALGORITHMS = [
    SimulateEventAlgorithm,
    ChangeStackAlgorithm,
    ExportChipsAlgorithm,
    TrainAlgorithm,
    PredictAlgorithm,
    EvaluateAlgorithm,
]
