"""What every Landslide Mapper algorithm shares, written once: errors, progress, styled outputs."""
from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsRasterLayer,
    QgsVectorLayer,
)

from ..core.errors import Canceled, InputError

STYLES = Path(__file__).resolve().parent.parent / "ui" / "styles"


class FeedbackProgress:
    """Adapts QgsProcessingFeedback to core's Progress protocol."""

    def __init__(self, feedback: QgsProcessingFeedback | None):
        self.feedback = feedback

    def set_progress(self, percent: float) -> None:
        if self.feedback is not None:
            self.feedback.setProgress(max(0.0, min(100.0, percent)))

    def log(self, message: str) -> None:
        if self.feedback is not None:
            self.feedback.pushInfo(message)

    def is_canceled(self) -> bool:
        return self.feedback is not None and self.feedback.isCanceled()


class StylePostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Applies a QML style from ui/styles to an output layer once QGIS has loaded it."""

    def __init__(self, qml: str):
        super().__init__()
        self.qml = qml

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 (Qt naming)
        if isinstance(layer, (QgsRasterLayer, QgsVectorLayer)):
            layer.loadNamedStyle(str(STYLES / self.qml))
            layer.triggerRepaint()


class LandslideAlgorithm(QgsProcessingAlgorithm):
    """Base class: subclasses declare parameters and implement `run()` as one call into core/.

    Core's InputError becomes a QgsProcessingException with the same person-readable message, and a cancel
    becomes a clean stop; nothing else needs handling in the subclasses.
    """

    _id = ""
    _display_name = ""
    _group = "Landslide mapping"
    _group_id = "landslide_mapping"
    _help = ""

    def __init__(self):
        super().__init__()
        self._post_processors = []  # keep Python references alive until QGIS has used them

    def name(self) -> str:
        return self._id

    def displayName(self) -> str:  # noqa: N802
        return self._display_name

    def group(self) -> str:
        return self._group

    def groupId(self) -> str:  # noqa: N802
        return self._group_id

    def shortHelpString(self) -> str:  # noqa: N802
        return self._help

    def createInstance(self):  # noqa: N802
        return type(self)()

    def processAlgorithm(self, parameters, context: QgsProcessingContext, feedback: QgsProcessingFeedback):  # noqa: N802
        try:
            return self.run(parameters, context, feedback, FeedbackProgress(feedback))
        except InputError as exc:
            raise QgsProcessingException(str(exc)) from None
        except Canceled:
            raise QgsProcessingException("Canceled by the user; no output was written.") from None

    def run(self, parameters, context, feedback, progress) -> dict:
        raise NotImplementedError

    def style_output(self, context: QgsProcessingContext, layer_id: str, qml: str) -> None:
        """Style an output with ui/styles/<qml> when it is loaded into the project (GUI runs)."""
        if context.willLoadLayerOnCompletion(layer_id):
            processor = StylePostProcessor(qml)
            self._post_processors.append(processor)
            context.layerToLoadOnCompletionDetails(layer_id).setPostProcessor(processor)
