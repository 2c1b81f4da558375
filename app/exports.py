"""Exports: the results as CSV or sorted into class folders, the adapted classifier or the frozen trunk as verified
ONNX files."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog

from anil_engine.sorting import sort_into_folders
from app.jobs import Job, status_while

if TYPE_CHECKING:
    from app.window import MainWindow


class Exports(QObject):
    """File ▸ Export …: each asks where, then writes in a job (the engine verifies ONNX against torch first)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window

    def export_csv_dialog(self) -> None:
        if not self.window.classify_panel.predictions:
            self.window.errors.warn("no classification results to export yet")
            return
        default = str(Path(self.window.session.last_dir()) / "results.csv")
        path, _ = QFileDialog.getSaveFileName(self.window, "Export results", default, "CSV (*.csv)")
        if path:
            self.export_csv(Path(path))

    def export_csv(self, path: Path) -> None:
        from anil_engine.checkpoint import atomic_write_bytes
        from anil_engine.classifier import predictions_csv
        from anil_engine.errors import AnilError

        predictions = self.window.classify_panel.predictions
        try:
            atomic_write_bytes(predictions_csv(predictions).encode("utf-8", "surrogateescape"), path)
            self.window.errors.info(f"wrote {len(predictions)} results to {path}")
        except AnilError as exc:
            self.window.errors.report(str(exc))

    def sort_into_folders_dialog(self) -> None:
        if not self.window.classify_panel.predictions:
            self.window.errors.warn("nothing classified yet: classify photos first, then sort them into folders")
            return
        dest = QFileDialog.getExistingDirectory(
            self.window, "Copy the photos into class folders inside", self.window.session.last_dir()
        )
        if dest:
            self.sort_into_folders(Path(dest))

    def sort_into_folders(self, dest: Path) -> Job:
        """Copy the classified photos into `dest`/<class>/ in a worker (Stop ends it after a whole file)."""
        predictions = list(self.window.classify_panel.predictions)
        return self.window.run_job("copy into folders", sort_into_folders, predictions, dest, on_done=self._sorted)

    def _sorted(self, report: Any) -> None:
        for message in report.failed:
            self.window.errors.warn(message)
        self.window.errors.info(report.summary())
        self.window.statusBar().showMessage(report.summary(), 10000)

    def export_classifier_dialog(self) -> None:
        if self.window.classifier is None or not self.window.classifier.is_adapted:
            self.window.errors.warn("adapt first: the classifier export holds the adapted head")
            return
        self._export_dialog("Export adapted classifier", "classifier.onnx", classifier=True)

    def export_trunk_dialog(self) -> None:
        if self.window.classifier is not None:
            self._export_dialog("Export frozen trunk", "trunk.onnx", classifier=False)

    def _export_dialog(self, title: str, name: str, classifier: bool) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self.window, title, str(Path(self.window.session.last_dir()) / name), "ONNX (*.onnx)"
        )
        if path:
            self.export_onnx(Path(path), classifier)

    def export_onnx(self, path: Path, classifier: bool) -> Job | None:
        """Export in a worker; the engine verifies the file against torch before writing it."""
        from anil_engine import export

        clf = self.window.classifier
        if clf is None:
            return None
        if classifier:
            args = (clf.model, clf.weight, clf.bias, list(clf.class_names), path, self.window.checkpoint_sha256)
            job = self.window.run_job("export classifier", export.export_classifier, *args, on_done=self._exported)
        else:
            job = self.window.run_job("export trunk", export.export_trunk, clf.model, path, on_done=self._exported)
        status_while(self.window.statusBar(), job, f"Exporting {path.name}…")
        return job

    def _exported(self, report: Any) -> None:
        self.window.errors.info(f"exported {report.path} (onnxruntime matches torch to {report.max_abs_diff:.1e})")
        self.window.exported.emit(report)
