"""train: chips → trained model package (.lmpkg)."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from .base import DEVICES, LandslideAlgorithm

# Mirrors models.registry (kept here so the toolbox lists them without importing torch).
ARCHITECTURES = ["Unet", "UnetPlusPlus", "MAnet", "Linknet", "FPN", "PSPNet", "PAN", "DeepLabV3", "DeepLabV3Plus"]
LOSSES = ["bce_dice", "bce", "dice", "focal", "jaccard", "tversky", "focal_tversky", "bce_focal_tversky"]


class TrainAlgorithm(LandslideAlgorithm):
    _id = "train"
    _display_name = "Train landslide model"
    _group = "Training"
    _group_id = "training"
    _help = (
        "Trains a segmentation network (U-Net by default) on exported chips, on this computer: a CUDA GPU is used "
        "when present, otherwise the CPU.\n\n"
        "After each epoch the model is scored on the validation chips; the best epoch by F1 is kept and training "
        "stops when F1 has not improved for 'patience' epochs. The decision threshold that maximises validation F1 "
        "is stored in the package, with the band names and normalisation statistics, so prediction needs nothing "
        "else.\n<b>Output</b>: a .lmpkg model package and a CSV of the learning curves next to it.\n"
        "Encoder weights are never downloaded: give a local weights file to start from pre-trained weights."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterFile("CHIPS", "Chip folder", QgsProcessingParameterFile.Folder))
        self.addParameter(QgsProcessingParameterFile("VALIDATION_CHIPS", "Separate validation chip folder",
                                                     QgsProcessingParameterFile.Folder, optional=True))
        self.addParameter(QgsProcessingParameterEnum("ARCHITECTURE", "Architecture", options=ARCHITECTURES,
                                                     defaultValue=0))
        self.addParameter(QgsProcessingParameterString("ENCODER", "Encoder", defaultValue="resnet18"))
        self.addParameter(QgsProcessingParameterEnum("LOSS", "Loss", options=LOSSES, defaultValue=0))
        self.addParameter(QgsProcessingParameterNumber("EPOCHS", "Maximum epochs", defaultValue=30, minValue=1))
        self.addParameter(QgsProcessingParameterNumber("BATCH_SIZE", "Batch size", defaultValue=8, minValue=1))
        self.addParameter(QgsProcessingParameterNumber("LEARNING_RATE", "Learning rate",
                                                       QgsProcessingParameterNumber.Double, defaultValue=1e-3,
                                                       minValue=1e-7, maxValue=1.0))
        self.addParameter(QgsProcessingParameterNumber("PATIENCE", "Early-stopping patience (epochs)",
                                                       defaultValue=5, minValue=1))
        self.addParameter(QgsProcessingParameterEnum("DEVICE", "Device", options=DEVICES, defaultValue=0))
        advanced = [
            QgsProcessingParameterNumber("ITERATIONS", "Batches per epoch (0 = one pass over the chips)",
                                         defaultValue=0, minValue=0),
            QgsProcessingParameterNumber("ENCODER_DEPTH", "Encoder depth (3–5; smaller is faster)", defaultValue=5,
                                         minValue=3, maxValue=5),
            QgsProcessingParameterString("DECODER_CHANNELS", "Decoder channels (U-Net, comma-separated; empty = "
                                         "default)", optional=True),
            QgsProcessingParameterNumber("SEED", "Random seed", defaultValue=0, minValue=0),
            QgsProcessingParameterFile("ENCODER_WEIGHTS", "Local encoder weights (.safetensors/.pth)",
                                       optional=True),
        ]
        for p in advanced:
            p.setFlags(p.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(p)
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT", "Model package",
                                                                "Landslide Mapper package (*.lmpkg)"))
        self.addOutput(QgsProcessingOutputNumber("F1", "Validation F1"))
        self.addOutput(QgsProcessingOutputNumber("THRESHOLD", "Decision threshold"))
        self.addOutput(QgsProcessingOutputFile("CURVES", "Learning curves (CSV)"))

    def compute(self, parameters, context, feedback, progress):
        from ..core.training import TrainConfig, train_model

        depth = self.parameterAsInt(parameters, "ENCODER_DEPTH", context)
        kwargs = {}
        if depth != 5:
            kwargs["encoder_depth"] = depth
        channels = self.parameterAsString(parameters, "DECODER_CHANNELS", context).strip()
        if channels:
            try:
                kwargs["decoder_channels"] = [int(c) for c in channels.split(",")]
            except ValueError:
                from ..core.errors import InputError

                raise InputError(f"Decoder channels must be integers separated by commas, not '{channels}'.")
        elif depth != 5:
            kwargs["decoder_channels"] = [256, 128, 64, 32, 16][5 - depth:]
        config = TrainConfig(
            architecture=ARCHITECTURES[self.parameterAsEnum(parameters, "ARCHITECTURE", context)],
            encoder=self.parameterAsString(parameters, "ENCODER", context),
            loss=LOSSES[self.parameterAsEnum(parameters, "LOSS", context)],
            epochs=self.parameterAsInt(parameters, "EPOCHS", context),
            batch_size=self.parameterAsInt(parameters, "BATCH_SIZE", context),
            learning_rate=self.parameterAsDouble(parameters, "LEARNING_RATE", context),
            patience=self.parameterAsInt(parameters, "PATIENCE", context),
            iterations_per_epoch=self.parameterAsInt(parameters, "ITERATIONS", context) or None,
            seed=self.parameterAsInt(parameters, "SEED", context),
            device=DEVICES[self.parameterAsEnum(parameters, "DEVICE", context)],
            encoder_weights=self.parameterAsFile(parameters, "ENCODER_WEIGHTS", context) or None,
            model_kwargs=kwargs,
        )
        result = train_model(
            self.parameterAsFile(parameters, "CHIPS", context),
            self.parameterAsFileOutput(parameters, "OUTPUT", context),
            config,
            validation_chips=self.parameterAsFile(parameters, "VALIDATION_CHIPS", context) or None,
            progress=progress,
        )
        return {"OUTPUT": str(result.package), "F1": result.validation["f1"], "THRESHOLD": result.threshold,
                "CURVES": str(result.curves_csv)}
