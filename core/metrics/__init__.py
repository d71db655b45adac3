"""Map checks people trust: pixel scores, landslides found and missed, threshold sweep, confusion and comparison
maps, the performance diagram, and readable reports.

Everything streams over full-width strips of the prediction's grid, so memory stays bounded for any raster size:
pixel counts and probability histograms are sums; connected objects are labelled per strip and joined across strip
borders (see `ObjectTally`).
"""

# The package's rooms: codes (map classes), scores, classes (multi-class scores), class_evaluation, objects,
# boundaries, results, evaluate, plots, reports.
from .codes import (  # noqa: F401
    MapClass, NODATA, TP, FP, FN, TN, CONFUSION_NAMES, CONFUSION_COLOURS, BOTH_TP, ONLY_A_TP, ONLY_B_TP,
    BOTH_FN, BOTH_FP, ONLY_A_FP, ONLY_B_FP, BOTH_TN, COMPARISON_CLASSES,
)
from .scores import (  # noqa: F401
    Confusion, ratio, scores, METRIC_HELP, format_metrics, SWEEP_BINS, sweep_confusions, threshold_sweep,
    best_threshold, best_rows, ProbabilityHistogram, exact_threshold,
)
from .objects import ObjectRule, ObjectTally, object_metrics, pixel_area_m2  # noqa: F401
from .boundaries import BoundaryTally  # noqa: F401
from .results import Evaluation, Comparison  # noqa: F401
from .evaluate import (  # noqa: F401
    STRIP_BLOCK, strip_windows, PROBABILITY_TOLERANCE, evaluate_prediction, compare_predictions,
)
from .plots import (  # noqa: F401
    plot_class_confusion, plot_code_map, plot_confusion_map, plot_comparison_map, plot_performance_diagram,
    plot_threshold_sweep,
)
from .classes import ClassInfo, ClassConfusion, class_infos, class_scores, format_class_table  # noqa: F401
from .classes import format_class_metrics  # noqa: F401
from .class_evaluation import CLASS_TABLE_TAG, ClassEvaluation, evaluate_class_map, read_class_table  # noqa: F401
from .reports import SWEEP_COLUMNS, write_sweep_csv, write_evaluation_report, write_comparison_report  # noqa: F401
