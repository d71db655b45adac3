"""train_ensemble: a grid of architectures × losses × learning rates → leaderboard and top-K ensemble package."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from .alg_train import ARCHITECTURES, LOSSES
from ..common.definitions import DEVICES
from .base import LandslideAlgorithm


class TrainEnsembleAlgorithm(LandslideAlgorithm):
    _id = "train_ensemble"
    _display_name = "Train ensemble of models"
    _group = "Training"
    _group_id = "training"
    _help = (
        "Trains one model for every combination of the chosen architectures, losses and learning rates, ranks "
        "them by F1 on the validation chips, and packages the best K together: the ensemble's landslide "
        "probability is the pixel-wise mean of its members'. In the global study this added about 0.05 F1 over "
        "the best single model. A mean does not always beat its best member (members that make the same errors, "
        "or whose probabilities are scaled differently, e.g. dice- against BCE-trained): the top 1, 2, … K are "
        "each scored on the validation chips and the package keeps the best of them, so it never validates below "
        "its best member; the log and leaderboard say how many were kept.\n\n"
        "<b>Output</b>: the ensemble package (.lmpkg, used by 'Map landslides with a model' like any model), a "
        "leaderboard CSV beside it (validation F1, precision, recall, MCC and training time of every member, and "
        "of the ensemble), and the members themselves in '<package>.members'.\n"
        "<b>Resume</b>: members already trained with the same settings are skipped, so an interrupted run "
        "continues where it stopped; a member interrupted mid-way resumes from its checkpoint.\n"
        "The defaults are small enough for a CPU (2 architectures × 2 losses, compact networks); the study "
        "trained 9 architectures × 5 losses × 2 learning rates on a GPU."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add_chip_inputs(landslide_classes=False)
        self.addParameter(self.enum_parameter("ARCHITECTURES", "Architectures", ARCHITECTURES,
                                              allowMultiple=True, default=[0, 4]))
        self.addParameter(self.enum_parameter("LOSSES", "Losses", LOSSES, allowMultiple=True,
                                              default=[2, 1]))
        self.addParameter(QgsProcessingParameterString("LEARNING_RATES", "Learning rates (comma-separated)",
                                                       defaultValue="0.001"))
        self.addParameter(QgsProcessingParameterNumber("TOP_K", "Members in the ensemble (top K)", defaultValue=3,
                                                       minValue=1))
        self.addParameter(QgsProcessingParameterString("ENCODER", "Encoder", defaultValue="resnet18"))
        self.addParameter(QgsProcessingParameterNumber("EPOCHS", "Maximum epochs per member", defaultValue=10,
                                                       minValue=1))
        self.addParameter(QgsProcessingParameterNumber("BATCH_SIZE", "Batch size", defaultValue=8, minValue=2))
        self.addParameter(QgsProcessingParameterNumber("PATIENCE", "Early-stopping patience (epochs)",
                                                       defaultValue=4, minValue=1))
        self.addParameter(self.enum_parameter("DEVICE", "Device", DEVICES, default=0))
        advanced = [
            QgsProcessingParameterNumber("ITERATIONS", "Batches per epoch (0 = one pass over the chips)",
                                         defaultValue=0, minValue=0),
            QgsProcessingParameterNumber("ENCODER_DEPTH", "Encoder depth (3–5; 5 = full-size networks)",
                                         defaultValue=3, minValue=3, maxValue=5),
            QgsProcessingParameterNumber("DECODER_WIDTH", "Decoder width of compact networks", defaultValue=8,
                                         minValue=2),
            QgsProcessingParameterNumber("POSITIVE_FRACTION", "Share of samples that contain landslide pixels",
                                         QgsProcessingParameterNumber.Double, defaultValue=0.5, minValue=0.0,
                                         maxValue=1.0),
            QgsProcessingParameterNumber("SEED", "Random seed", defaultValue=0, minValue=0),
        ]
        self.add_advanced(advanced)
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT", "Ensemble package",
                                                                "Landslide Mapper package (*.lmpkg)"))
        self.addOutput(QgsProcessingOutputNumber("F1", "Ensemble validation F1"))
        self.addOutput(QgsProcessingOutputNumber("BEST_SINGLE_F1", "Best single member's validation F1"))
        self.addOutput(QgsProcessingOutputNumber("THRESHOLD", "Ensemble decision threshold"))
        self.addOutput(QgsProcessingOutputFile("LEADERBOARD", "Leaderboard (CSV)"))

    def side_files(self, parameter, path):
        from ..core.ensemble import leaderboard_path

        return [leaderboard_path(path)] if parameter == "OUTPUT" else []

    def compute(self, parameters, context, feedback, progress):
        from ..core.ensemble import EnsembleConfig, train_ensemble
        from ..common.errors import InputError
        from ..core.training import TrainConfig

        rates = self.parameterAsString(parameters, "LEARNING_RATES", context)
        try:
            rates = [float(r) for r in rates.replace(";", ",").split(",") if r.strip()]
        except ValueError:
            raise InputError(f"Learning rates (LEARNING_RATES) must be numbers separated by commas, not "
                             f"'{rates}'.") from None
        depth = self.parameterAsInt(parameters, "ENCODER_DEPTH", context)
        base = TrainConfig(
            encoder=self.parameterAsString(parameters, "ENCODER", context),
            epochs=self.parameterAsInt(parameters, "EPOCHS", context),
            batch_size=self.parameterAsInt(parameters, "BATCH_SIZE", context),
            patience=self.parameterAsInt(parameters, "PATIENCE", context),
            iterations_per_epoch=self.parameterAsInt(parameters, "ITERATIONS", context) or None,
            positive_fraction=self.parameterAsDouble(parameters, "POSITIVE_FRACTION", context),
            seed=self.parameterAsInt(parameters, "SEED", context),
            device=DEVICES[self.enum_index(parameters, "DEVICE", context)],
        )
        config = EnsembleConfig(
            architectures=[ARCHITECTURES[i] for i in self.enum_indexes(parameters, "ARCHITECTURES", context)],
            losses=[LOSSES[i] for i in self.enum_indexes(parameters, "LOSSES", context)],
            learning_rates=rates,
            top_k=self.parameterAsInt(parameters, "TOP_K", context),
            base=base,
            encoder_depth=None if depth == 5 else depth,
            decoder_width=self.parameterAsInt(parameters, "DECODER_WIDTH", context),
        )
        result = train_ensemble(
            self.parameterAsFile(parameters, "CHIPS", context),
            self.parameterAsFileOutput(parameters, "OUTPUT", context),
            config,
            validation_chips=self.parameterAsFile(parameters, "VALIDATION_CHIPS", context) or None,
            progress=progress,
        )
        return {"OUTPUT": str(result.package), "F1": result.validation["f1"] or 0.0,
                "BEST_SINGLE_F1": float(result.rows[0]["val_f1"]), "THRESHOLD": result.threshold,
                "LEADERBOARD": str(result.leaderboard)}
