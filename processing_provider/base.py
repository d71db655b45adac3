"""What every Landslide Mapper algorithm shares, written once: errors, progress, styled outputs."""
from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessingParameterCrs,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingLayerPostProcessorInterface,
)

from ..common.errors import Canceled, InputError
from ..common.outputs import FolderKind, check_run_paths, explain_os_error, output_run
from .styles import StylePostProcessor



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


class LandslideAlgorithm(QgsProcessingAlgorithm):
    """Base class: subclasses declare parameters and implement `compute()` as one call into core/.

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
        """Check every output against the inputs, then compute; all outputs appear together or not at all."""
        outputs, side = [], []
        try:
            outputs = run_outputs(self, parameters, context)
            side = [(param, path, str(s)) for param, path, _, _ in outputs
                    for s in self.side_files(param, Path(path))]
            check_run_paths(run_inputs(self, parameters, context), outputs, side)
            with output_run():
                return self.compute(parameters, context, feedback, FeedbackProgress(feedback))
        except InputError as exc:
            raise QgsProcessingException(_naming_output(str(exc), outputs, side)) from None
        except Canceled as exc:
            detail = str(exc) if str(exc) != Canceled.DEFAULT else ""
            raise QgsProcessingException(f"Canceled by the user; no output was written.{' ' + detail if detail else ''}"
                                         ) from None
        except OSError as exc:  # a full disk, a folder without write permission, a vanished file
            written = _output_named_in(f"{exc.filename or ''} {exc}", outputs, side)
            message = explain_os_error(exc, written[1] if written else None)
            raise QgsProcessingException(_naming_output(message, outputs, side)) from None
        except MemoryError:
            raise QgsProcessingException(
                f"{self.displayName()} ran out of memory with these settings. Nothing was written. Use smaller "
                f"values (raster size, tile or batch size, neighbourhood radius) or a smaller extent.") from None
        except QgsProcessingException:
            raise
        except Exception as exc:  # noqa: BLE001 - a bug of ours: say so plainly, keep the details for a report
            import traceback

            feedback.pushDebugInfo(traceback.format_exc())
            raise QgsProcessingException(
                f"{self.displayName()} stopped on an unexpected error ({type(exc).__name__}: {exc}). Nothing was "
                f"written. Please report it to the plugin's issue tracker with the Processing log."
            ) from None

    def compute(self, parameters, context, feedback, progress) -> dict:
        raise NotImplementedError

    def side_files(self, parameter: str, path: Path) -> list[Path]:
        """Files the run writes beside the output `parameter` (learning curves, a report's HTML page …)."""
        return []

    def folder_kinds(self) -> dict[str, FolderKind]:
        """Folder outputs that may replace an earlier output of the same kind (parameter name -> FolderKind)."""
        return {}

    def add_chip_inputs(self, landslide_classes: bool = True) -> None:
        """The chip folders every training algorithm reads (and which of their classes are landslides)."""
        self.addParameter(QgsProcessingParameterFile("CHIPS", "Chip folder", QgsProcessingParameterFile.Folder))
        self.addParameter(QgsProcessingParameterFile("VALIDATION_CHIPS", "Separate validation chip folder",
                                                     QgsProcessingParameterFile.Folder, optional=True))
        if landslide_classes:
            self.addParameter(QgsProcessingParameterString(
                "LANDSLIDE_CLASSES", "Landslide classes (values or names, comma-separated; empty = as exported)",
                optional=True))

    @staticmethod
    def output_grid_parameters(crs_default: str | None, resolution_default: str) -> list:
        """TARGET_CRS (when `crs_default` says what empty means) and RESOLUTION: the output grid of a raster."""
        grid = []
        if crs_default is not None:
            grid.append(QgsProcessingParameterCrs("TARGET_CRS", f"Target CRS (empty = {crs_default})", optional=True))
        grid.append(QgsProcessingParameterNumber("RESOLUTION", f"Target resolution ({resolution_default})",
                                                 QgsProcessingParameterNumber.Double, optional=True, minValue=0.0))
        return grid

    def add_advanced(self, parameters) -> None:
        """Add parameters under the dialog's "Advanced parameters" fold."""
        for p in parameters:
            p.setFlags(p.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(p)

    # -- enums: by name (ARCHITECTURE=Unet) everywhere, by short key (SAMPLING=grid), and by the old index ----------
    def enum_parameter(self, name: str, description: str, options, default=0, keys=None, **kwargs):
        """An enum parameter with static strings: qgis_process, batch files and models give the option itself
        (`LOSS=bce_dice`), or its short key from `keys` (`SAMPLING=grid`); the index of 0.x releases still works.
        `default` is an option, a key or an index (a list of them with allowMultiple)."""
        options = [str(o) for o in options]
        keys = [str(k) for k in keys] if keys is not None else options
        if not hasattr(self, "_enum_keys"):
            self._enum_keys = {}
        self._enum_keys[name] = (options, keys)
        if default is not None:
            if isinstance(default, (list, tuple)):
                default = [options[_enum_index(options, keys, d)] for d in default]
            else:
                default = options[_enum_index(options, keys, default)]
        return QgsProcessingParameterEnum(name, description, options=options, defaultValue=default,
                                          usesStaticStrings=True, **kwargs)

    def enum_index(self, parameters, name: str, context) -> int:
        """Index of the chosen option of an enum parameter, whichever form the value came in."""
        indexes = self.enum_indexes(parameters, name, context)
        return indexes[0] if indexes else 0

    def enum_indexes(self, parameters, name: str, context) -> list[int]:
        options, keys = self._enum_keys[name]
        value = parameters.get(name)
        if value is None or value == "" or value == []:
            names = self.parameterAsEnumStrings(parameters, name, context) or \
                [self.parameterAsEnumString(parameters, name, context)]
            return [options.index(n) for n in names if n in options]
        if not isinstance(value, (str, int, float, list, tuple)):  # a QgsProperty of a model or data-defined input
            names = self.parameterAsEnumStrings(parameters, name, context) or \
                [self.parameterAsEnumString(parameters, name, context)]
            return [options.index(n) for n in names if n in options]
        indexes = [_enum_index(options, keys, v) for v in _enum_items(value, options)]
        return [i for i in indexes if i is not None]

    def checkParameterValues(self, parameters, context):  # noqa: N802
        """QGIS's check, after an enum's short key or old numeric index has been read as the option it means."""
        translated = dict(parameters)
        for name, (options, keys) in getattr(self, "_enum_keys", {}).items():
            value = translated.get(name)
            if isinstance(value, (str, int, float, list, tuple)) and value not in ("", []):
                items = _enum_items(value, options)
                indexes = [_enum_index(options, keys, v) for v in items]
                if all(i is not None for i in indexes):
                    names = [options[i] for i in indexes]
                    multiple = isinstance(value, (list, tuple)) or len(names) > 1
                    translated[name] = names if multiple else names[0]
        return super().checkParameterValues(translated, context)

    def style_output(self, context: QgsProcessingContext, layer_id: str, qml: str | None) -> None:
        """Style an output with ui/styles/<qml> (None: a change stack) when it is loaded into the project."""
        if context.willLoadLayerOnCompletion(layer_id):
            # a ready post-processor (e.g. styles.ClassStylePostProcessor) or a style file of ui/styles
            processor = qml if isinstance(qml, QgsProcessingLayerPostProcessorInterface) else StylePostProcessor(qml)
            self._post_processors.append(processor)
            context.layerToLoadOnCompletionDetails(layer_id).setPostProcessor(processor)


def _enum_items(value, options: list[str]) -> list:
    """The items of an enum value: a list, one option (which may hold commas), or 'a,b' of a batch file."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str) and value not in options and "," in value:
        return [v.strip() for v in value.split(",")]
    return [value]


def _enum_index(options: list[str], keys: list[str], value) -> int | None:
    """Index of an option given as itself, its key (case-insensitive) or its index (int or digits); None if none."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value) if float(value).is_integer() and 0 <= value < len(options) else None
    text = str(value).strip()
    if text in options:
        return options.index(text)
    lowered = [k.lower() for k in keys]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    if text.isdigit() and int(text) < len(options):
        return int(text)
    return None


TEMPORARY = "TEMPORARY_OUTPUT"


def _output_named_in(text: str, outputs, side=()) -> tuple[str, str] | None:
    """(parameter, path) of the output a message is about: its path, a file written beside it, or one of their
    temporary names appears in it."""
    candidates = [(parameter, path, path) for parameter, path, _, _ in outputs] + list(side)
    for parameter, main, path in candidates:
        stem = Path(path).stem
        named = str(Path(path).parent) in text and f"'{Path(path).name}'" in text
        if str(path) in text or named or (stem and f"/.{stem}." in text):
            return parameter, main
    return None


def _naming_output(message: str, outputs, side=()) -> str:
    """A write failure's message led by the output parameter (and its file) it is about."""
    if not message.startswith(("Not enough space", "Could not write", "Could not create", "Writing", "No permission")):
        return message
    found = _output_named_in(message, outputs, side)
    return message if found is None else f"{found[0]} ('{Path(found[1]).name}'): {message}"


def _value_string(value, context) -> str | None:
    """A parameter value as the string it stands for (a path, a layer id or a URI), or None."""
    from qgis.core import QgsMapLayer, QgsProcessingFeatureSourceDefinition, QgsProcessingOutputLayerDefinition, \
        QgsProperty

    if isinstance(value, QgsProcessingOutputLayerDefinition):
        value = value.sink
    if isinstance(value, QgsProcessingFeatureSourceDefinition):
        value = value.source
    if isinstance(value, QgsProperty):
        value = value.valueAsString(context.expressionContext())
        value = value[0] if isinstance(value, tuple) else value
    if isinstance(value, QgsMapLayer):
        value = value.source()
    return str(value) if value not in (None, "") else None


def _file_of(text: str, context) -> str | None:
    """The local file behind a path, a layer id/name or a provider URI, or None (memory/web/database sources)."""
    from qgis.core import QgsProcessingUtils, QgsProviderRegistry

    layer = QgsProcessingUtils.mapLayerFromString(text, context, False)
    if layer is not None:
        provider = layer.providerType() if hasattr(layer, "providerType") else layer.dataProvider().name()
        text = QgsProviderRegistry.instance().decodeUri(provider, layer.source()).get("path") or layer.source()
    path = text.split("|", 1)[0]
    if "://" in path or path.startswith(("memory:", "postgres:", "/vsi")):
        return None
    return path


def run_inputs(alg: QgsProcessingAlgorithm, parameters, context) -> list[tuple[str, str]]:
    """(parameter, local file) of every input of a run: layers, layer lists and files."""
    from qgis.core import QgsProcessingDestinationParameter

    found = []
    for definition in alg.parameterDefinitions():
        if isinstance(definition, QgsProcessingDestinationParameter):
            continue
        value = parameters.get(definition.name())
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            text = _value_string(v, context)
            path = _file_of(text, context) if text and definition.type() in _INPUT_TYPES else None
            if path and Path(path).exists():
                found.append((definition.name(), path))
    return found


_INPUT_TYPES = {"raster", "vector", "source", "file", "multilayer", "layer", "mesh", "pointcloud"}


def run_outputs(alg: "LandslideAlgorithm", parameters, context) -> list[tuple[str, str, bool, FolderKind | None]]:
    """(parameter, path, is_folder, folder kind) of every output the user named (temporary outputs skipped)."""
    from qgis.core import QgsProcessingDestinationParameter, QgsProcessingParameterFolderDestination

    found = []
    for definition in alg.parameterDefinitions():
        if not isinstance(definition, QgsProcessingDestinationParameter):
            continue
        text = _value_string(parameters.get(definition.name()), context)
        if not text or text == TEMPORARY or text.startswith(("memory:", "ogr:", "postgres:", "postgis:")):
            continue
        is_dir = isinstance(definition, QgsProcessingParameterFolderDestination)
        path = Path(text.split("|", 1)[0])
        if not is_dir and not path.suffix and not path.is_dir():
            path = path.with_suffix("." + definition.defaultFileExtension())  # as QGIS completes the name
        found.append((definition.name(), str(path), is_dir, alg.folder_kinds().get(definition.name())))
    return found


def _refuse_empty_extent(alg: QgsProcessingAlgorithm, parameters, name: str, context) -> bool:
    """False when the extent parameter is unset; refuses one given with zero width or height (a line or a point,
    e.g. a click instead of a drag on the map), which would otherwise silently mean "the whole raster"."""
    if not parameters.get(name):
        return False
    rect = alg.parameterAsExtent(parameters, name, context)  # in its own CRS: a reprojected line has a width
    if rect is None or rect.isNull():
        return False
    if rect.isEmpty():
        corners = ", ".join(f"{v:.10g}" for v in (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()))
        raise InputError(f"The extent {name} ({corners}) has zero width or height, so it holds no pixel; draw an "
                         f"area with both a width and a height, or leave {name} empty to process the whole raster.")
    return True


def extent_or_none(alg: QgsProcessingAlgorithm, parameters, name: str, context, crs):
    """The EXTENT parameter as (xmin, ymin, xmax, ymax) in `crs`, or None when it was left empty."""
    if not _refuse_empty_extent(alg, parameters, name, context):
        return None
    rect = alg.parameterAsExtent(parameters, name, context, crs)
    if rect is None or rect.isNull() or rect.isEmpty():
        return None
    return (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())


def extent_with_crs(alg: QgsProcessingAlgorithm, parameters, name: str, context):
    """The EXTENT parameter as ((xmin, ymin, xmax, ymax), CRS WKT or None) in its own CRS, or (None, None)."""
    if not _refuse_empty_extent(alg, parameters, name, context):
        return None, None
    crs = alg.parameterAsExtentCrs(parameters, name, context)
    rect = alg.parameterAsExtent(parameters, name, context, crs) if crs.isValid() else \
        alg.parameterAsExtent(parameters, name, context)
    if rect is None or rect.isNull() or rect.isEmpty():
        return None, None
    return (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()), (crs.toWkt() if crs.isValid()
                                                                                    else None)


def crs_or_none(alg: QgsProcessingAlgorithm, parameters, name: str, context) -> str | None:
    """A CRS parameter as WKT (what core/ takes), or None when it was left empty."""
    if not parameters.get(name):
        return None
    crs = alg.parameterAsCrs(parameters, name, context)
    return crs.toWkt() if crs.isValid() else None


def optional_number(parameters, name: str, cast=float):
    """A number parameter that may be left empty (None then)."""
    value = parameters.get(name)
    return cast(value) if value not in (None, "") else None


def layer_file(layer, what: str) -> tuple[str, str | None]:
    """(file path, sub-layer name) behind a file-based layer; a clear error for database/web layers."""
    from qgis.core import QgsProviderRegistry

    if layer is None:
        raise QgsProcessingException(f"The {what} layer is missing or could not be loaded.")
    provider = layer.providerType() if hasattr(layer, "providerType") else layer.dataProvider().name()
    parts = QgsProviderRegistry.instance().decodeUri(provider, layer.source())
    path = parts.get("path") or layer.source()
    if not Path(path).exists():
        raise QgsProcessingException(
            f"The {what} layer '{layer.name()}' is not a local file ({layer.source()}); save it to a file first."
        )
    return path, parts.get("layerName") or None
