"""Start the desktop app: models first, then Qt; an exception hook that never loses the window."""

from __future__ import annotations

import datetime as dt
import sys
import traceback
from pathlib import Path

import onnxruntime  # noqa: F401  (import before Qt: a known DLL clash on Windows otherwise)

from gui.core.engine.model import ModelContractError, load_model
from gui.core.records.logs import APPLICATION, ORGANISATION, attach_log_file, log
from gui.core.engine import precision as precisions
from gui.core.resources import assets_dir


def install_exception_hook(log_file: Path | None) -> None:
    """Any uncaught error: a dialog with a copyable report and a line in the log; the app goes on."""
    from PySide6.QtWidgets import QApplication

    from gui.app.dialogs import ErrorReportDialog

    def hook(exc_type, exc, tb) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            QApplication.quit()
            return
        report = f"{dt.datetime.now().isoformat(timespec='seconds')}\n" + "".join(traceback.format_exception(exc_type, exc, tb))
        log.error("unhandled exception\n%s", report)
        try:
            ErrorReportDialog(report, log_file, QApplication.activeWindow()).exec()
        except Exception:  # a broken dialog must not recurse into this hook
            sys.__excepthook__(exc_type, exc, tb)

    sys.excepthook = hook


def create_window(argv: list[str]):
    """Build the application and its window with the bundled models; nothing blocks here.

    A bundled model that fails the contract check is reported in a dialog and left out:
    the app still starts with the others.
    """
    from PySide6.QtCore import QSettings
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication, QMessageBox

    from gui.app.window import MainWindow

    app = QApplication.instance() or QApplication([sys.argv[0], *[a for a in argv if a.startswith("-")]])
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    icon = assets_dir() / "icons" / "mri-classifier.png"
    if icon.exists():
        app.setWindowIcon(QIcon(str(icon)))
    log_file = attach_log_file()  # None where the per-user folder cannot be written: the app runs, unlogged
    install_exception_hook(log_file)

    # The arithmetic chosen last time (View > Arithmetic), where this computer can run it.
    chosen = str(QSettings().value("precision", precisions.DEFAULT))
    picked = precisions.bundled(chosen if chosen in precisions.PRECISIONS else precisions.DEFAULT)
    if picked.note:
        log.info("bundled models: %s", picked.note)
    models, problems = [], []
    for path in picked.files:
        try:
            models.append(load_model(path))
        except ModelContractError as exc:
            problems.append(str(exc))
            log.error("bundled model refused: %s", exc)
    window = MainWindow(models)
    window.show()
    if problems or not models:
        text = ("Some bundled models could not be loaded:\n\n" + "\n".join(problems)) if problems else \
            "No bundled model was found. Use File > Load model."
        # Not modal: the window stays usable, and a start-up check is never blocked by it.
        window.startup_notice = QMessageBox(QMessageBox.Icon.Warning, "Models", text, parent=window)
        window.startup_notice.setModal(False)
        window.startup_notice.show()
    files = [Path(a) for a in argv if not a.startswith("-")]
    if files:
        window.open_paths(files)
    return app, window


def run_app(argv: list[str]) -> int:
    """Run the window until it closes. ``--exit-when-shown`` quits as soon as the window is
    on screen, printing ``window shown``: how smoke tests and the cold-start benchmark check
    a build without a person to close it."""
    from PySide6.QtCore import QTimer

    from gui.app.linux_libraries import xcb_problem

    problem = xcb_problem()
    if problem:  # Qt would abort with a generic message: say what to install instead
        print(problem, file=sys.stderr)
        return 1
    smoke = "--exit-when-shown" in argv
    app, window = create_window([a for a in argv if a != "--exit-when-shown"])
    if smoke:
        def done() -> None:
            print("window shown" if window.isVisible() else "window NOT shown", flush=True)
            window.close()
            app.quit()

        QTimer.singleShot(0, done)
    return app.exec()
