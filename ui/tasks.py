"""Docks run their work as Processing algorithms in background tasks, one step after another, cancellable.

A dock never computes anything itself: it builds the parameters a user could also type into the toolbox, the
batch dialog or `qgis_process`, and hands them to `QgsProcessingAlgRunnerTask`. The context and feedback of the
running step are kept as attributes, because the task only holds C++ references to them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Union

from qgis.core import (
    QgsApplication,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
)
from qgis.PyQt.QtCore import QObject, pyqtSignal

PROVIDER_ID = "landslide_mapper"

Parameters = Union[dict, Callable[[dict], dict]]  # a callable gets the results of the earlier steps by step name
MISSING_MODULE = re.compile(r"No module named '([\w.]+)'")


def explain(error: str) -> str:
    """A failure as a person can act on it: a missing Python package points to the Doctor."""
    missing = MISSING_MODULE.search(error or "")
    if missing:
        package = missing.group(1).split(".")[0]
        return (f"The Python package '{package}' is not installed in QGIS's Python, and this step needs it. "
                f"Raster ▸ Landslide Mapper ▸ Doctor shows the command that installs it.")
    return error


def algorithm(algorithm_id: str):
    """A registered algorithm by id (`predict` means `landslide_mapper:predict`), or None."""
    if ":" not in algorithm_id:
        algorithm_id = f"{PROVIDER_ID}:{algorithm_id}"
    return QgsApplication.processingRegistry().algorithmById(algorithm_id)


def has_parameter(algorithm_id: str, name: str) -> bool:
    """Whether the installed version of an algorithm offers a parameter (the docks light up what exists)."""
    alg = algorithm(algorithm_id)
    return alg is not None and alg.parameterDefinition(name) is not None


@dataclass
class Step:
    """One algorithm run of a chain: `name` keys its results, `label` is what the progress bar says."""

    name: str
    algorithm_id: str
    parameters: Parameters
    label: str = ""


class ChainFeedback(QgsProcessingFeedback):
    """Processing feedback whose log lines also arrive as a Qt signal (queued to the GUI thread)."""

    message = pyqtSignal(str, bool)  # text, is_error

    def pushInfo(self, info):  # noqa: N802 (QGIS API)
        super().pushInfo(info)
        self.message.emit(info, False)

    def pushWarning(self, warning):  # noqa: N802
        super().pushWarning(warning)
        self.message.emit(warning, False)

    def reportError(self, error, fatalError=False):  # noqa: N802, N803
        super().reportError(error, fatalError)
        self.message.emit(error, True)


class AlgorithmChain(QObject):
    """Runs steps in order as `QgsProcessingAlgRunnerTask`s; stops at the first failure or on cancel."""

    progressChanged = pyqtSignal(float)  # 0–100 over the whole chain
    stepStarted = pyqtSignal(str)  # the step's label
    message = pyqtSignal(str, bool)  # log line, is_error
    finished = pyqtSignal(bool, dict, str)  # ok, {step name: results}, error message ('' when ok)

    def __init__(self, steps: list[Step], parent: QObject | None = None):
        super().__init__(parent)
        self.steps = list(steps)
        self.results: dict[str, dict] = {}
        self.task: QgsProcessingAlgRunnerTask | None = None
        self.context: QgsProcessingContext | None = None
        self.feedback: ChainFeedback | None = None
        self.canceled = False
        self.running = False
        self.done = False
        self.ok = False
        self.error = ""
        self._index = -1
        self._kept: list = []  # contexts and feedbacks of finished steps, alive as long as the chain

    def start(self) -> None:
        self.running = True
        self._next()

    def cancel(self) -> None:
        """Ask the running step to stop; algorithms check this between windows and batches."""
        self.canceled = True
        if self.feedback is not None:
            self.feedback.cancel()
        if self.task is not None:
            self.task.cancel()

    def _next(self) -> None:
        self._index += 1
        if self.canceled:
            self._finish(False, "Canceled.")
            return
        if self._index >= len(self.steps):
            self._finish(True, "")
            return
        step = self.steps[self._index]
        alg = algorithm(step.algorithm_id)
        if alg is None:
            self._finish(False, f"The Processing algorithm '{step.algorithm_id}' is not available: is the "
                                f"Landslide Mapper provider enabled (Settings ▸ Options ▸ Processing)?")
            return
        try:
            params = step.parameters(self.results) if callable(step.parameters) else dict(step.parameters)
        except (KeyError, ValueError) as exc:
            self._finish(False, f"Cannot prepare '{alg.displayName()}': {exc}")
            return
        self.context = QgsProcessingContext()
        self.context.setProject(QgsProject.instance())
        self.feedback = ChainFeedback()
        self._kept += [self.context, self.feedback]
        ok, why = alg.checkParameterValues(params, self.context)
        if not ok:
            self._finish(False, f"{alg.displayName()}: {why}")
            return
        self.feedback.progressChanged.connect(self._on_progress)
        self.feedback.message.connect(self._on_message)
        self.stepStarted.emit(step.label or alg.displayName())
        self.message.emit(f"{alg.displayName()} ({alg.id()}): {params}", False)
        self.task = QgsProcessingAlgRunnerTask(alg, params, self.context, self.feedback)
        self.task.executed.connect(self._on_executed)
        QgsApplication.taskManager().addTask(self.task)

    def _on_progress(self, percent: float) -> None:
        n = max(1, len(self.steps))
        self.progressChanged.emit(100.0 * (self._index + max(0.0, min(100.0, percent)) / 100.0) / n)

    def _on_message(self, text: str, is_error: bool) -> None:
        if is_error and text.strip():
            self.error = text.strip()  # shown when the step fails
        self.message.emit(text, is_error)

    def _on_executed(self, ok: bool, results: dict) -> None:
        self.task = None  # the task manager deletes the task object
        if not ok:
            self._finish(False, "Canceled." if self.canceled else explain(self.error or "The algorithm failed."))
            return
        self.results[self.steps[self._index].name] = dict(results)
        self._next()

    def _finish(self, ok: bool, error: str) -> None:
        self.running, self.done, self.ok = False, True, ok
        if ok:
            self.progressChanged.emit(100.0)
        self.error = error
        self.finished.emit(ok, self.results, error)



def start_chain(owner, steps: list, on_message=None) -> "AlgorithmChain":
    """Run `steps` in the background, wired to a dock's progress bar, status line and `_on_finished`.

    `owner` has the attributes made by `common.add_run_row`; the chain is kept as `owner.chain`.
    """
    from .common import show_status

    chain = AlgorithmChain(steps, owner)
    chain.progressChanged.connect(lambda p: owner.progress.setValue(int(p)))
    chain.stepStarted.connect(lambda label: show_status(owner.status, label + " …"))
    if on_message is not None:
        chain.message.connect(on_message)
    chain.finished.connect(owner._on_finished)
    owner.progress.setValue(0)
    owner.chain = chain
    chain.start()
    return chain
