"""Two small charts drawn with QPainter (no plotting library in QGIS's Python): learning curves and a
performance diagram. They only show numbers the algorithms reported; they compute nothing of their own."""
from __future__ import annotations

import math
import re

from qgis.PyQt.QtCore import QPointF, QRectF, QSize, Qt
from qgis.PyQt.QtGui import QColor, QFont, QPainter, QPainterPath, QPen
from qgis.PyQt.QtWidgets import QSizePolicy, QWidget

# The log line core/training.py writes after every epoch.
EPOCH_LINE = re.compile(r"Epoch (\d+)/(\d+): loss ([-\d.eE+naif]+), val loss ([-\d.eE+naif]+), "
                        r"val F1 ([-\d.eE+naif]+)")

LOSS_COLOUR = QColor("#1f77b4")
VAL_LOSS_COLOUR = QColor("#ff7f0e")
F1_COLOUR = QColor("#2ca02c")
GRID = QColor("#d0d0d0")
TEXT = QColor("#333333")


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k at or above `value`, so axis ticks read as round numbers."""
    if not value > 0 or not math.isfinite(value):
        return 1.0
    scale = 10 ** math.floor(math.log10(value))
    return next(m * scale for m in (1, 2, 2.5, 5, 10) if m * scale >= value * (1 - 1e-9))


def parse_epoch(line: str) -> dict | None:
    """{'epoch', 'epochs', 'train_loss', 'val_loss', 'val_f1'} from a training log line, else None."""
    match = EPOCH_LINE.search(line)
    if not match:
        return None
    epoch, epochs, loss, val_loss, f1 = match.groups()
    return {"epoch": int(epoch), "epochs": int(epochs), "train_loss": float(loss), "val_loss": float(val_loss),
            "val_f1": float(f1)}


class _Chart(QWidget):
    margins = (44, 12, 40, 30)  # left, top, right, bottom

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)
        self.setMinimumHeight(170)

    def sizeHint(self):  # noqa: N802 (Qt)
        return QSize(320, 210)

    def plot_rect(self) -> QRectF:
        left, top, right, bottom = self.margins
        return QRectF(left, top, max(10, self.width() - left - right), max(10, self.height() - top - bottom))

    def _painter(self) -> QPainter:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.Antialiasing)
        painter.fillRect(self.rect(), QColor("white"))
        font = QFont(painter.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.85))
        painter.setFont(font)
        return painter


class LearningCurve(_Chart):
    """Training and validation loss (left axis) and validation F1 (right axis, 0–1) per epoch, live."""

    margins = (44, 24, 40, 30)  # the legend sits in the top margin

    def __init__(self, parent=None):
        super().__init__(parent)
        self.epochs: list[dict] = []
        self.planned = 0

    def clear(self) -> None:
        self.epochs, self.planned = [], 0
        self.update()

    def add_epoch(self, row: dict) -> None:
        self.epochs.append(row)
        self.planned = max(self.planned, int(row.get("epochs", 0)), len(self.epochs))
        self.update()

    def add_log_line(self, line: str) -> bool:
        row = parse_epoch(line)
        if row is not None:
            self.add_epoch(row)
        return row is not None

    def paintEvent(self, event):  # noqa: N802 (Qt)
        painter = self._painter()
        rect = self.plot_rect()
        n = max(2, self.planned)
        losses = [v for r in self.epochs for v in (r["train_loss"], r["val_loss"]) if math.isfinite(v)]
        top = nice_ceiling(max(losses)) if losses else 1.0

        def x(epoch):
            return rect.left() + rect.width() * (epoch - 1) / (n - 1)

        def y_loss(v):
            return rect.bottom() - rect.height() * min(v, top) / top

        def y_f1(v):
            return rect.bottom() - rect.height() * max(0.0, min(1.0, v))

        painter.setPen(QPen(GRID, 1))
        for k in range(5):
            yy = rect.top() + rect.height() * k / 4
            painter.drawLine(QPointF(rect.left(), yy), QPointF(rect.right(), yy))
        painter.setPen(TEXT)
        painter.drawRect(rect)
        for k in range(5):
            yy = rect.top() + rect.height() * k / 4
            painter.drawText(QRectF(0, yy - 8, rect.left() - 4, 16), Qt.AlignRight | Qt.AlignVCenter,
                             f"{top * (4 - k) / 4:.2g}")
            painter.drawText(QRectF(rect.right() + 4, yy - 8, 36, 16), Qt.AlignLeft | Qt.AlignVCenter,
                             f"{(4 - k) / 4:.2g}")
        painter.drawText(QRectF(rect.left(), rect.bottom() + 4, rect.width(), 14), Qt.AlignCenter,
                         f"epoch (of {self.planned})" if self.planned else "epoch")
        series = [("train_loss", LOSS_COLOUR, y_loss, "loss"), ("val_loss", VAL_LOSS_COLOUR, y_loss, "val loss"),
                  ("val_f1", F1_COLOUR, y_f1, "val F1")]
        for key, colour, to_y, _ in series:
            points = [QPointF(x(r["epoch"]), to_y(r[key])) for r in self.epochs if math.isfinite(r[key])]
            painter.setPen(QPen(colour, 2))
            for a, b in zip(points, points[1:]):
                painter.drawLine(a, b)
            painter.setBrush(colour)
            for p in points:
                painter.drawEllipse(p, 2.5, 2.5)
            painter.setBrush(Qt.NoBrush)
        lx = rect.left()
        for _, colour, _, label in series:
            painter.setPen(QPen(colour, 2))
            painter.drawLine(QPointF(lx, rect.top() - 12), QPointF(lx + 14, rect.top() - 12))
            painter.setPen(TEXT)
            painter.drawText(QPointF(lx + 17, rect.top() - 8), label)
            lx += 26 + painter.fontMetrics().horizontalAdvance(label)
        painter.drawText(QRectF(rect.right() - 60, rect.top() - 18, 60 + 30, 14), Qt.AlignRight, "F1")
        if not self.epochs:
            painter.drawText(rect, Qt.AlignCenter, "Learning curves appear here after each epoch")
        painter.end()


class PerformanceDiagram(_Chart):
    """Roebber's performance diagram: success ratio (precision) across, probability of detection (recall) up,
    curves of equal critical success index (= IoU) and dashed lines of equal bias; one point per evaluation."""

    CSI_LEVELS = (0.1, 0.3, 0.5, 0.7, 0.9)
    BIAS_LEVELS = (0.5, 1.0, 2.0)
    COLOURS = [QColor(c) for c in ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")]
    margins = (40, 12, 14, 34)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.points: list[tuple[str, float, float]] = []  # label, precision, recall

    def sizeHint(self):  # noqa: N802
        return QSize(300, 300)

    def heightForWidth(self, width):  # noqa: N802
        return width

    def add_point(self, label: str, precision, recall) -> bool:
        if precision is None or recall is None or not (math.isfinite(precision) and math.isfinite(recall)):
            return False
        self.points.append((label, float(precision), float(recall)))
        self.update()
        return True

    def clear(self) -> None:
        self.points = []
        self.update()

    def paintEvent(self, event):  # noqa: N802 (Qt)
        painter = self._painter()
        full = self.plot_rect()
        side = min(full.width(), full.height())
        rect = QRectF(full.left(), full.top(), side, side)

        def to_px(sr, pod):
            return QPointF(rect.left() + rect.width() * sr, rect.bottom() - rect.height() * pod)

        painter.setPen(QPen(GRID, 1))
        for csi in self.CSI_LEVELS:  # 1/CSI = 1/SR + 1/POD − 1
            path = QPainterPath()
            first = True
            for k in range(1, 101):
                sr = csi + (1 - csi) * k / 100
                denom = 1 / csi - 1 / sr + 1
                pod = 1 / denom if denom > 0 else 1.0
                if pod > 1.0001:
                    continue
                point = to_px(sr, pod)
                path.moveTo(point) if first else path.lineTo(point)
                first = False
            painter.drawPath(path)
            label_at = to_px(1.0, csi)  # at SR = 1 the curve meets POD = CSI
            painter.drawText(QPointF(rect.right() - 20, label_at.y() - 2), f"{csi:g}")
        pen = QPen(GRID, 1, Qt.DashLine)
        painter.setPen(pen)
        for bias in self.BIAS_LEVELS:  # POD = bias × SR
            end = to_px(min(1.0, 1 / bias), min(1.0, bias))
            painter.drawLine(to_px(0, 0), end)
            painter.drawText(QPointF(end.x() + 2, end.y() + 10), f"bias {bias:g}")
        painter.setPen(TEXT)
        painter.drawRect(rect)
        for k in range(0, 6):
            v = k / 5
            painter.drawText(QRectF(rect.left() + rect.width() * v - 14, rect.bottom() + 2, 28, 12), Qt.AlignCenter,
                             f"{v:.1f}")
            painter.drawText(QRectF(0, rect.bottom() - rect.height() * v - 6, rect.left() - 4, 12),
                             Qt.AlignRight | Qt.AlignVCenter, f"{v:.1f}")
        painter.drawText(QRectF(rect.left(), rect.bottom() + 15, rect.width(), 14), Qt.AlignCenter,
                         "success ratio (precision)")
        painter.save()
        painter.translate(10, rect.center().y())
        painter.rotate(-90)
        painter.drawText(QRectF(-rect.height() / 2, -8, rect.height(), 14), Qt.AlignCenter,
                         "probability of detection (recall)")
        painter.restore()
        for i, (label, precision, recall) in enumerate(self.points):
            colour = self.COLOURS[i % len(self.COLOURS)]
            point = to_px(precision, recall)
            painter.setPen(QPen(QColor("black"), 1))
            painter.setBrush(colour)
            painter.drawEllipse(point, 5, 5)
            painter.setPen(colour.darker(130))
            width = painter.fontMetrics().horizontalAdvance(label)
            left = point.x() + 8 if point.x() + 8 + width < rect.right() else point.x() - 8 - width
            painter.drawText(QPointF(left, point.y() + (14 if point.y() < rect.top() + 16 else -7)), label)
        painter.setBrush(Qt.NoBrush)
        painter.end()
