"""Engine and headless command on hand-built contract models: answers, error rows, CSV, exit codes."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("onnx")

from gui.core.commands import classify as cli  # noqa: E402
from gui.core.records import csvout  # noqa: E402
from gui.core.engine import stream  # noqa: E402
from gui.core.engine.classifier import (  # noqa: E402
    DISAGREE_MESSAGE,
    LOW_CONFIDENCE_MESSAGE,
    NO_HEAD_MESSAGE,
    Classifier,
)
from gui.core.engine.model import load_model  # noqa: E402
from gui.core.readers import open_scan  # noqa: E402
from gui.core.engine.result import Result  # noqa: E402
from gui.core.engine.tuning import EngineSettings  # noqa: E402
from tests.conftest import engine_threads  # noqa: E402
from tests.onnx_factory import make_contract_model  # noqa: E402


@pytest.fixture
def models(tmp_path):
    return [load_model(make_contract_model(tmp_path / "det.onnx", "binary")),
            load_model(make_contract_model(tmp_path / "type.onnx", "tumor-type"))]


@pytest.fixture
def folder(tmp_path) -> Path:
    d = tmp_path / "scans"
    (d / "sub").mkdir(parents=True)
    Image.new("RGB", (100, 60), (230, 230, 230)).save(d / "bright.png")
    Image.new("L", (64, 64), 5).save(d / "dark.jpg")
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    Image.new("RGB", (300, 300), (240, 60, 60)).save(d / "sub" / "red.jpg")
    (d / "notes.txt").write_text("skipped by folder scans")
    return d


def test_bright_is_tumour_dark_is_not(models):
    clf = Classifier(models)
    bright = clf.classify_image(np.full((50, 80, 3), 230, np.uint8))
    dark = clf.classify_image(np.full((50, 80, 3), 5, np.uint8))
    assert bright.prediction == "tumor" and bright.tumor_probability > 0.9
    assert dark.prediction == "no_tumor" and dark.confidence == pytest.approx(1 - dark.tumor_probability)
    assert bright.tumor_type in ("glioma", "meningioma", "pituitary") and 0 < bright.tumor_type_confidence <= 1
    assert bright.heat.shape == (8, 8)
    assert set(bright.probabilities) == {"synthetic-binary 0.0.1", "synthetic-tumor-type 0.0.1"}


def test_stream_keeps_order_and_reports_bad_files(models, folder):
    clf = Classifier(models)
    files = list(stream.collect_files([folder], recursive=True))
    assert [f.name for f in files] == ["bright.png", "broken.jpg", "dark.jpg", "red.jpg"]
    results = list(stream.classify_files(files, clf, engine=EngineSettings(batch=2)))
    assert [Path(r.path).name for r in results] == [f.name for f in files]
    broken = results[1]
    assert broken.status == "error" and "damaged" in broken.error and broken.prediction == ""
    assert [r.prediction for r in results if r.ok] == ["tumor", "no_tumor", "tumor"]


def test_cancel_stops_between_batches(models, folder):
    files = [folder / "bright.png"] * 40
    seen = []
    for r in stream.classify_files(files, Classifier(models), engine=EngineSettings(batch=4),
                                   should_cancel=lambda: len(seen) >= 8):
        seen.append(r)
    assert 8 <= len(seen) < 40


def test_no_engine_thread_outlives_a_cancel_or_the_end_and_no_session_is_built_in_a_worker(models, folder, monkeypatch):
    """A cancelled or finished stream returns after its batches in flight: a window closed after a
    cancel must not find the engine still running into whatever comes next. Every session the
    workers use is built by the caller before they start."""
    import threading

    import onnxruntime

    built, real = [], onnxruntime.InferenceSession
    monkeypatch.setattr(onnxruntime, "InferenceSession",
                        lambda *a, **k: built.append(threading.current_thread().name) or real(*a, **k))
    files, seen = [folder / "bright.png"] * 40, []
    for r in stream.classify_files(files, Classifier(models), engine=EngineSettings(8, 1, 2, 1),
                                   should_cancel=lambda: len(seen) >= 8):
        seen.append(r)
    assert 8 <= len(seen) < 40 and engine_threads() == []
    assert built == [threading.current_thread().name] * 2  # one single-thread session per model, here
    assert len(list(stream.classify_files(files[:10], Classifier(models), engine=EngineSettings(4, 1, 2, 1)))) == 10
    assert engine_threads() == []


def test_symlink_loop_does_not_trap_the_scan(models, folder):
    os.symlink(folder, folder / "sub" / "loop")
    files = list(stream.collect_files([folder], recursive=True))
    assert len(files) == 4


def test_csv_columns_and_atomic_refusal(models, folder, tmp_path):
    clf = Classifier(models)
    assert csvout.columns(clf)[:9] == ["path", "status", "prediction", "tumor_probability", "confidence", "tumor_type",
                                 "tumor_type_confidence", "ood_warning", "error"]
    assert csvout.columns(clf)[9:] == ["models_disagree", "n_slices", "max_slice", "tumor_slices", "series_description", "sequence", "sequence_from", "heatmap", "p_no_tumor", "p_tumor", "p_glioma", "p_meningioma", "p_tumor-type_no_tumor",
                                 "p_pituitary"]
    out = tmp_path / "r.csv"
    rows = [csvout.row(clf, r) for r in stream.classify_files(stream.collect_files([folder]), clf)]
    assert csvout.write_csv_atomic(out, csvout.columns(clf), rows) == out and len(rows) == 3
    with pytest.raises(csvout.CsvExistsError):
        csvout.write_csv_atomic(out, csvout.columns(clf), rows)

    def exploding():
        yield rows[0]
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        csvout.write_csv_atomic(out, csvout.columns(clf), exploding(), force=True)
    assert len(list(csv.DictReader(out.open()))) == 3  # the old file is intact, no temp left behind
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def run_cli(*args) -> int:
    return cli.classify_main([*map(str, args)])


def test_cli_exit_codes_csv_and_heatmaps(tmp_path, folder, capsys):
    det, typ = make_contract_model(tmp_path / "d.onnx"), make_contract_model(tmp_path / "t.onnx", "tumor-type")
    out = tmp_path / "out.csv"
    code = run_cli(folder, "--csv", out, "--recursive", "--model", det, "--model", typ, "--heatmaps", tmp_path / "hm")
    assert code == 1  # broken.jpg failed
    rows = list(csv.DictReader(out.open()))
    assert [r["status"] for r in rows] == ["ok", "error", "ok", "ok"]
    assert rows[1]["error"] and rows[1]["prediction"] == ""
    assert sorted(p.name for p in (tmp_path / "hm").iterdir()) == ["bright.png.heatmap.png", "dark.jpg.heatmap.png",
                                                                    "red.jpg.heatmap.png"]
    assert "could not be read" in capsys.readouterr().err
    assert run_cli(folder / "bright.png", "--csv", out, "--model", det) == 2  # exists, no --force
    assert run_cli(folder / "bright.png", "--csv", out, "--model", det, "--force") == 0
    assert len(list(csv.DictReader(out.open()))) == 1
    assert run_cli(folder / "bright.png", "--csv", out, "--model", tmp_path / "nope.onnx", "--force") == 2
    assert run_cli("--csv") == 2
    assert run_cli(tmp_path / "missing", "--csv", tmp_path / "x.csv", "--model", det) == 2


def test_cli_ctrl_c_writes_finished_rows(tmp_path, folder, monkeypatch):
    det = make_contract_model(tmp_path / "d.onnx")
    real = stream.classify_files

    def interrupted(*a, **kw):
        for i, r in enumerate(real(*a, **kw)):
            if i == 2:
                raise KeyboardInterrupt
            yield r

    monkeypatch.setattr(stream, "classify_files", interrupted)
    out = tmp_path / "partial.csv"
    assert run_cli(folder, "--recursive", "--csv", out, "--model", det) == 130
    assert len(list(csv.DictReader(out.open()))) == 2


@pytest.mark.parametrize("preprocessing", ["pad-resize", "brain-crop-v1"])
def test_window_batch_and_training_see_the_same_pixels(tmp_path, preprocessing):
    """A Br35H-sized JPEG (630x630, where draft-mode decoding used to differ): the window's path
    (open_scan -> images -> classify_image on the model image), the batch path (classify_files) and the training path
    (training.features / training.data through model_input) give identical inputs and answers."""
    from gui.core.engine.preprocess import model_input
    from gui.core.readers import open_scan
    from tests.onnx_factory import make_card
    from training.data import load_model_image

    rng = np.random.default_rng(4)
    path = tmp_path / "br35h_like.jpg"
    Image.fromarray((rng.random((630, 630)) * 200).astype(np.uint8)).save(path, quality=90)
    card = make_card("binary", 64)
    card["input"]["preprocessing"] = preprocessing
    clf = Classifier([load_model(make_contract_model(tmp_path / "m.onnx", card=card))])
    scan = open_scan(path)
    image, scale = scan.model_view(None, clf.need, in_hand=scan.plane())  # as the window does
    window = clf.classify_image(image, str(path), scale=scale)
    (batch,) = list(stream.classify_files([path], clf))
    assert window.probabilities == batch.probabilities and window.geometry == batch.geometry
    fitted = clf.fit(image, scale)[(64, preprocessing)].pixels
    assert np.array_equal(fitted, model_input(image, 64, preprocessing).pixels)
    if preprocessing == "pad-resize":
        assert np.array_equal(fitted, load_model_image(path, 64))


def test_a_card_caution_band_flags_answers_near_the_threshold(tmp_path):
    from gui.core.engine.model import ModelContractError
    from tests.onnx_factory import make_card

    card = make_card("binary", 64)
    card["caution"] = {"band_half_width": 0.45}
    clf = Classifier([load_model(make_contract_model(tmp_path / "c.onnx", card=card))])
    sure = clf.classify_image(np.full((64, 64, 3), 250, np.uint8))
    unsure = clf.classify_image(np.full((64, 64, 3), 50, np.uint8))
    assert abs(unsure.tumor_probability - 0.5) < 0.45 <= abs(sure.tumor_probability - 0.5)
    assert LOW_CONFIDENCE_MESSAGE in unsure.ood_warning and sure.ood_warning == ""
    plain = Classifier([load_model(make_contract_model(tmp_path / "p.onnx"))])
    assert plain.classify_image(np.full((64, 64, 3), 50, np.uint8)).ood_warning == ""
    card["caution"] = {"band_half_width": "wide"}
    with pytest.raises(ModelContractError, match="caution band"):
        load_model(make_contract_model(tmp_path / "bad.onnx", card=card))


def test_heads_that_disagree_are_said_in_the_row_and_the_caution(tmp_path):
    """The multi-task factory model: the detector calls a uniform grey of 0.22 a tumour (mean above
    ~0.19) while its map stays below 0.5 everywhere (sigmoid(8 * 0.22 - 2) < 0.5)."""
    clf = Classifier([load_model(make_contract_model(tmp_path / "mt.onnx", multitask=True))])
    cols = csvout.columns(clf)
    assert cols[len(csvout.CSV_COLUMNS)] == csvout.DISAGREE_COLUMN and cols[len(csvout.CSV_COLUMNS) + 4 + len(csvout.STUDY_COLUMNS)].startswith("p_")
    torn = clf.classify_image(np.full((64, 64, 3), 56, np.uint8))
    clear = clf.classify_image(np.full((64, 64, 3), 250, np.uint8))
    assert torn.prediction == "tumor" and torn.models_disagree and DISAGREE_MESSAGE in torn.ood_warning
    assert clear.models_disagree is False and csvout.row(clf, clear)[csvout.DISAGREE_COLUMN] == "no"
    assert csvout.row(clf, torn)[csvout.DISAGREE_COLUMN] == "yes"
    assert csvout.row(clf, Result(path="x", status="error", error="bad"))[csvout.DISAGREE_COLUMN] == ""


def test_a_detector_and_a_type_model_that_disagree(models):
    """The pair: the type model's own P(no tumour) against the detector's answer."""
    clf = Classifier(models)
    r = clf.classify_image(np.full((50, 80, 3), 230, np.uint8))
    p_no = r.probabilities[clf.typer.name]["no_tumor"]
    assert r.models_disagree == ((r.prediction == "tumor") == (p_no >= 0.5))


def test_the_headless_run_logs_to_the_apps_log_folder(tmp_path, monkeypatch, folder):
    """Where the window logs, ``classify`` logs too: the run, each unreadable file with its reason,
    the summary. Never beside the scans."""
    if not __import__("sys").platform.startswith("linux"):
        pytest.skip("the XDG data folder is a Linux convention")
    from gui.core.records import logs

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    model = make_contract_model(tmp_path / "d.onnx")
    assert cli.classify_main([str(folder), "--csv", str(tmp_path / "o.csv"), "--model", str(model)]) == 1
    log_file = tmp_path / "data" / "MRI Tumor Classifier" / "mri-classifier" / "logs" / "mri-classifier.log"
    assert log_file == logs.log_dir() / logs.LOG_NAME
    text = log_file.read_text()
    assert "classify 3 file(s)" in text and "broken.jpg:" in text and "could not be read" in text
    assert not any(p.suffix == ".log" for p in folder.rglob("*"))
    logs.attach_log_file(tmp_path / "elsewhere.log")  # let go of the test's folder


def test_a_blank_frame_gets_a_caution_not_a_confident_answer(tmp_path):
    from tests.onnx_factory import make_card

    card = make_card("binary", 64)
    card["input"]["preprocessing"] = "brain-crop-v1"
    clf = Classifier([load_model(make_contract_model(tmp_path / "b.onnx", card=card))])
    blank = clf.classify_image(np.zeros((1, 1, 3), np.uint8))
    assert NO_HEAD_MESSAGE in blank.ood_warning
    from tests.conftest import brain_like

    head = clf.classify_image(open_scan(brain_like(tmp_path / "h.png", tumour=False)).model_frame())
    assert NO_HEAD_MESSAGE not in head.ood_warning


def test_the_window_command_help_names_the_headless_command_from_its_parser(capsys):
    from gui import launcher

    assert launcher.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert cli.build_parser().format_usage().removeprefix("usage: ").split()[0] in out
    assert "--csv CSV" in out and "--exit-when-shown" in out


def test_a_large_jpeg_is_decoded_reduced_and_the_window_and_the_batch_see_the_same_pixels(tmp_path):
    """A 1,400 px JPEG: the model image is a DCT-reduced decode (at least twice the model's input
    across the crop); the window's path, the batch's and training's give identical model inputs, and
    the geometry is in the full frame's pixels (where the heatmap is drawn). A PNG is never reduced."""
    from tests.onnx_factory import make_card
    from training.features import item_input

    yy, xx = np.mgrid[0:1400, 0:1400]
    head = (((yy - 700) / 560.0) ** 2 + ((xx - 700) / 500.0) ** 2 < 1) * 120
    Image.fromarray(head.astype(np.uint8)).convert("RGB").save(tmp_path / "big.jpg", quality=92)
    Image.fromarray(head.astype(np.uint8)).save(tmp_path / "big.png")
    card = make_card("binary", 224)  # the shipped size: training reads with the same reduction
    card["input"]["preprocessing"] = "brain-crop-v1"
    clf = Classifier([load_model(make_contract_model(tmp_path / "m.onnx", size=224, card=card))])
    scan = open_scan(tmp_path / "big.jpg")
    image, scale = scan.model_view(None, clf.need)
    assert scale in (2.0, 4.0, 8.0) and image.shape[0] * scale == 1400
    window = clf.fit(*scan.model_view(None, clf.need, in_hand=scan.plane()))[(224, "brain-crop-v1")]
    _frame, batch, _seq = stream.decode_file(tmp_path / "big.jpg", clf)
    _shown, kept, _seq = stream.decode_file(tmp_path / "big.jpg", clf, keep_frame=True)
    for other in (batch[(224, "brain-crop-v1")], kept[(224, "brain-crop-v1")]):
        assert np.array_equal(window.pixels, other.pixels) and window.geometry == other.geometry
    assert 1100 <= window.geometry.side <= 1300 and _shown.shape[:2] == (1400, 1400)  # frame pixels
    assert window.geometry.side / scale >= clf.need.min_side  # still twice the model's input across the crop
    doc = {"datasets": {"d": str(tmp_path)}}
    _f, trained = item_input(doc, {"dataset": "d", "path": "big.jpg"})
    assert trained.geometry == window.geometry  # training reads the same reduced decode
    png = open_scan(tmp_path / "big.png")
    assert png.model_view(None, clf.need)[1] == 1.0


def test_uncertain_means_close_to_the_threshold_the_answer_was_given_at():
    """A model whose card sets its threshold at 0.25: 0.30 is a borderline tumour, 0.45 a clear one."""
    from gui.app.formatting import is_uncertain
    from gui.core.engine.result import Result

    assert is_uncertain(Result(path="a", prediction="tumor", tumor_probability=0.30, threshold=0.25))
    assert not is_uncertain(Result(path="a", prediction="tumor", tumor_probability=0.45, threshold=0.25))
    assert is_uncertain(Result(path="a", prediction="no_tumor", tumor_probability=0.45))  # at the usual 0.5


def test_the_cards_heat_level_decides_when_the_map_disputes_the_answer(tmp_path):
    """A near-white image: the detector says tumour and the factory map peaks at ~0.997. At the default
    level (0.5) the map agrees; a card whose map must reach 0.999 to say tumour makes it a dispute. A
    level outside (0, 1) is refused when the model loads."""
    from gui.core.engine.model import ModelContractError
    from tests.onnx_factory import make_card

    image = np.full((64, 64, 3), 250, np.uint8)
    plain = Classifier([load_model(make_contract_model(tmp_path / "a.onnx", multitask=True))])
    assert plain.classify_image(image).models_disagree is False
    card = make_card("binary", 64)
    card["type_labels"] = ["glioma", "meningioma", "pituitary"]
    card["caution"] = {"band_half_width": 0.0, "heat_level": 0.999}
    strict = Classifier([load_model(make_contract_model(tmp_path / "b.onnx", multitask=True, card=card))])
    r = strict.classify_image(image)
    assert r.prediction == "tumor" and r.heat.max() < 0.999 and r.models_disagree and DISAGREE_MESSAGE in r.ood_warning
    card["caution"] = {"band_half_width": 0.0, "heat_level": 1.5}
    with pytest.raises(ModelContractError, match="heat level"):
        load_model(make_contract_model(tmp_path / "c.onnx", multitask=True, card=card))


def test_a_result_is_never_changed_after_it_is_made():
    """Results cross threads (engine workers, the window): a change is a new result, not an edit."""
    import dataclasses

    from gui.core.engine.result import Result

    r = Result(path="a", prediction="tumor", tumor_probability=0.9)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.prediction = "no_tumor"
    assert dataclasses.replace(r, prediction="no_tumor").prediction == "no_tumor" and r.prediction == "tumor"
