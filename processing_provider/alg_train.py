"""train: chips → trained model package (.lmpkg)."""
from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)

from ..common.definitions import DEVICES
from .base import LandslideAlgorithm

# Mirrors models.registry (kept here so the toolbox lists them without importing torch). Enum indexes are API
# (batch files store them): append, never reorder.
ARCHITECTURES = ["Unet", "UnetPlusPlus", "MAnet", "Linknet", "FPN", "PSPNet", "PAN", "DeepLabV3", "DeepLabV3Plus",
                 "ResUNet"]
LOSSES = ["bce_dice", "bce", "dice", "focal", "jaccard", "tversky", "focal_tversky", "bce_focal_tversky", "lovasz",
          "ce", "ce_dice"]
TASKS = ["binary", "multiclass"]
TASK_NAMES = ["Binary: landslide or not (sigmoid)", "Multi-class: every class of the chips (softmax)"]
OPTIMIZERS = ["adam", "adamw"]


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
        "else.\n<b>Output</b>: a .lmpkg model package, and the learning curves next to it as CSV and PNG.\n"
        "<b>Resume</b>: after every epoch a checkpoint is saved in the folder '<package>.checkpoint'. If training "
        "is canceled, fails or the computer stops, no package is written but that folder is kept: run train again "
        "with the same settings and output to continue where it stopped, or delete the folder. It is removed when "
        "the package is written.\n"
        "<b>Study settings</b> (global ensemble study): crops of 256 px from larger chips, positive fraction 1, "
        "1000 batches of 4 per epoch, patience 50. The generalised-CNN study: ResUNet, loss bce_focal_tversky, "
        "learning rate 1e-4, LR patience 3, patience 10.\n"
        "Encoder weights are never downloaded: give a local weights file to start from pre-trained weights.\n"
        "<b>Chips</b>: a folder from 'Export training chips', or an ArcGIS Pro 'Classified Tiles' export "
        "(images/, labels/, map.txt, .emd). <b>Landslide classes</b>: the label class values or names that are "
        "landslides (e.g. <i>2</i>); all other classes are learnt as background. Empty: the choice made at "
        "export; for an ArcGIS folder, the class named 'landslide' or its only class (with several classes you "
        "must say which). An ArcGIS folder has no split: whole blocks of tiles (two tiles wide) are held out for "
        "validation, and training tiles overlapping them are left out. Its band names (which predict matches "
        "against the input raster's band descriptions) are the tiles' own band descriptions when every tile has "
        "the same, else the .emd's band names, else B1…Bn; with B1…Bn, predict says which band mapping to pass.\n"
        "<b>Task</b>: <i>binary</i> (default) learns landslide or not. <i>multiclass</i> learns every class of the "
        "chips' class table at once (e.g. bedrock, wetland, sharp and smooth ravines, landslides; background is "
        "class 0): one softmax channel per class, losses ce (cross-entropy), ce_dice, dice or focal in their "
        "multi-class forms (bce and bce_dice mean ce and ce_dice there), optional class weights (one per class, "
        "background first, e.g. <i>0.5,1,1,2</i>); nodata and unlabelled pixels are ignored. The best epoch is "
        "the one with the highest macro F1 (mean F1 of the classes), and the package keeps the class table "
        "(values, names, colours), so predict writes a class map with a legend. Landslide classes do not apply."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add_chip_inputs()
        self.addParameter(self.enum_parameter("ARCHITECTURE", "Architecture", ARCHITECTURES, default=0))
        self.addParameter(QgsProcessingParameterString("ENCODER", "Encoder", defaultValue="resnet18"))
        self.addParameter(self.enum_parameter("LOSS", "Loss", LOSSES, default=0))
        self.addParameter(QgsProcessingParameterNumber("EPOCHS", "Maximum epochs", defaultValue=30, minValue=1))
        self.addParameter(QgsProcessingParameterNumber("BATCH_SIZE", "Batch size", defaultValue=8, minValue=1))
        self.addParameter(QgsProcessingParameterNumber("LEARNING_RATE", "Learning rate",
                                                       QgsProcessingParameterNumber.Double, defaultValue=1e-3,
                                                       minValue=1e-7, maxValue=1.0))
        self.addParameter(QgsProcessingParameterNumber("PATIENCE", "Early-stopping patience (epochs)",
                                                       defaultValue=5, minValue=1))
        self.addParameter(self.enum_parameter("DEVICE", "Device", DEVICES, default=0))
        self.addParameter(self.enum_parameter("TASK", "Task", TASK_NAMES, default=0, keys=TASKS))
        advanced = [
            QgsProcessingParameterString("CLASS_WEIGHTS", "Class weights (multi-class; comma-separated, one per "
                                         "class, background first; empty = equal)", optional=True),
            QgsProcessingParameterNumber("ITERATIONS", "Batches per epoch (0 = one pass over the chips)",
                                         defaultValue=0, minValue=0),
            QgsProcessingParameterNumber("ENCODER_DEPTH", "Encoder depth (3–5; smaller is faster)", defaultValue=5,
                                         minValue=3, maxValue=5),
            QgsProcessingParameterString("DECODER_CHANNELS", "Decoder channels (U-Net, comma-separated; empty = "
                                         "default)", optional=True),
            QgsProcessingParameterNumber("SEED", "Random seed", defaultValue=0, minValue=0),
            QgsProcessingParameterFile("ENCODER_WEIGHTS", "Local encoder weights (.safetensors/.pth)",
                                       optional=True),
            QgsProcessingParameterNumber("CROP_SIZE", "Random crop size (pixels; 0 = whole chips)", defaultValue=0,
                                         minValue=0),
            QgsProcessingParameterNumber("POSITIVE_FRACTION", "Share of samples that contain landslide pixels",
                                         QgsProcessingParameterNumber.Double, defaultValue=0.5, minValue=0.0,
                                         maxValue=1.0),
            self.enum_parameter("OPTIMIZER", "Optimizer", OPTIMIZERS, default=0),
            QgsProcessingParameterNumber("WEIGHT_DECAY", "Weight decay", QgsProcessingParameterNumber.Double,
                                         defaultValue=0.0, minValue=0.0),
            QgsProcessingParameterNumber("LR_PATIENCE", "Epochs without gain before the learning rate drops ×0.1 "
                                         "(0 = half the patience)", defaultValue=0, minValue=0),
            QgsProcessingParameterNumber("POSITIVE_WEIGHT", "Landslide class weight in BCE (0 = the loss's own)",
                                         QgsProcessingParameterNumber.Double, defaultValue=0.0, minValue=0.0),
            QgsProcessingParameterBoolean("AUGMENT", "Augment with 90° rotations and flips", defaultValue=True),
            QgsProcessingParameterNumber("BRIGHTNESS", "Brightness augmentation (std, normalised units)",
                                         QgsProcessingParameterNumber.Double, defaultValue=0.0, minValue=0.0),
            QgsProcessingParameterNumber("NOISE", "Noise augmentation (std, normalised units)",
                                         QgsProcessingParameterNumber.Double, defaultValue=0.0, minValue=0.0),
        ]
        self.add_advanced(advanced)
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT", "Model package",
                                                                "Landslide Mapper package (*.lmpkg)"))
        self.addOutput(QgsProcessingOutputNumber("F1", "Validation F1"))
        self.addOutput(QgsProcessingOutputNumber("THRESHOLD", "Decision threshold"))
        self.addOutput(QgsProcessingOutputFile("CURVES", "Learning curves (CSV)"))
        self.addOutput(QgsProcessingOutputFile("CURVES_PLOT", "Learning curves (PNG)"))

    def side_files(self, parameter, path):
        from ..core.training import curves_paths

        return list(curves_paths(path)) if parameter == "OUTPUT" else []

    def compute(self, parameters, context, feedback, progress):
        from ..common.errors import InputError
        from ..core.training import TrainConfig, train_model
        from ..models.registry import model_kwargs_for

        architecture = ARCHITECTURES[self.enum_index(parameters, "ARCHITECTURE", context)]
        channels = self.parameterAsString(parameters, "DECODER_CHANNELS", context).strip()
        try:
            channels = [int(c) for c in channels.split(",")] if channels else None
        except ValueError:
            raise InputError(f"Decoder channels (DECODER_CHANNELS) must be integers separated by commas, not "
                             f"'{channels}'.") from None
        kwargs = model_kwargs_for(architecture, self.parameterAsInt(parameters, "ENCODER_DEPTH", context), channels)

        config = TrainConfig(
            architecture=architecture,
            encoder=self.parameterAsString(parameters, "ENCODER", context),
            loss=LOSSES[self.enum_index(parameters, "LOSS", context)],
            epochs=self.parameterAsInt(parameters, "EPOCHS", context),
            batch_size=self.parameterAsInt(parameters, "BATCH_SIZE", context),
            learning_rate=self.parameterAsDouble(parameters, "LEARNING_RATE", context),
            patience=self.parameterAsInt(parameters, "PATIENCE", context),
            iterations_per_epoch=self.parameterAsInt(parameters, "ITERATIONS", context) or None,
            seed=self.parameterAsInt(parameters, "SEED", context),
            device=DEVICES[self.enum_index(parameters, "DEVICE", context)],
            encoder_weights=self.parameterAsFile(parameters, "ENCODER_WEIGHTS", context) or None,
            model_kwargs=kwargs,
            crop_size=self.parameterAsInt(parameters, "CROP_SIZE", context) or None,
            positive_fraction=self.parameterAsDouble(parameters, "POSITIVE_FRACTION", context),
            optimizer=OPTIMIZERS[self.enum_index(parameters, "OPTIMIZER", context)],
            weight_decay=self.parameterAsDouble(parameters, "WEIGHT_DECAY", context),
            lr_patience=self.parameterAsInt(parameters, "LR_PATIENCE", context) or None,
            positive_weight=self.parameterAsDouble(parameters, "POSITIVE_WEIGHT", context) or None,
            augment=self.parameterAsBool(parameters, "AUGMENT", context),
            brightness=self.parameterAsDouble(parameters, "BRIGHTNESS", context),
            noise=self.parameterAsDouble(parameters, "NOISE", context),
            task=TASKS[self.enum_index(parameters, "TASK", context)],
            class_weights=_class_weights(self.parameterAsString(parameters, "CLASS_WEIGHTS", context)),
        )
        result = train_model(
            self.parameterAsFile(parameters, "CHIPS", context),
            self.parameterAsFileOutput(parameters, "OUTPUT", context),
            config,
            validation_chips=self.parameterAsFile(parameters, "VALIDATION_CHIPS", context) or None,
            progress=progress,
            landslide_classes=self.parameterAsString(parameters, "LANDSLIDE_CLASSES", context) or None,
        )
        return {"OUTPUT": str(result.package), "F1": result.validation["f1"], "THRESHOLD": result.threshold,
                "CURVES": str(result.curves_csv), "CURVES_PLOT": str(result.curves_png)}


def _class_weights(text: str) -> list[float] | None:
    """'0.5, 1, 2' → [0.5, 1.0, 2.0]; empty → None (equal weights)."""
    from ..common.errors import InputError

    text = (text or "").strip()
    if not text:
        return None
    try:
        return [float(t) for t in text.replace(";", ",").split(",") if t.strip()]
    except ValueError:
        raise InputError(f"Class weights (CLASS_WEIGHTS) must be numbers separated by commas, one per class "
                         f"(background first), e.g. '0.5,1,1'; not '{text}'.") from None
