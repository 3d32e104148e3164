"""One scan, one answer: the same slices as PNG files, a NIfTI volume and DICOM series with any VOI
window get the same probabilities; display windows never change an answer; one decision per screen."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from gui.core.commands import classify as cli
from gui.core.engine import stream
from gui.core.engine.classifier import Classifier
from gui.core.records import csvout
from gui.core.display import Window, voi_window
from gui.core.engine.model import load_model
from gui.core.readers import open_scan, open_study
from gui.core.resources import bundled_models
from tests.series_factory import stack, write_dicom_series, write_nifti


@pytest.fixture(scope="module")
def shipped() -> Classifier:
    return Classifier([load_model(p) for p in bundled_models()])


def _study_probabilities(item, classifier):
    [r] = list(stream.classify_files([item], classifier))
    assert r.ok, r.error
    return r, np.array([s.tumor_probability for s in r.slices])


def test_the_same_slices_in_every_container_get_the_same_answer(tmp_path, shipped):
    """PNG files (what an export gives), a NIfTI volume of the stored values and DICOM series of the
    same values with a narrow, a wide and no window: per-slice |dP| <= 0.02, same verdict, same key slice."""
    images, _ = stack(size=256)
    pngs = []
    for k, im in enumerate(images):
        pngs.append(tmp_path / "png" / f"s{k:03d}.png")
        pngs[-1].parent.mkdir(exist_ok=True)
        Image.fromarray(im).save(pngs[-1])
    p_png = np.array([r.tumor_probability for r in stream.classify_files(pngs, shipped)])
    containers = {"nifti": write_nifti(tmp_path / "v.nii", images.astype(np.int16) * 16)}
    # 12-bit values 0..4080: narrow window inside the data, wide one 8x the data, none
    for name, window in (("narrow", (1200.0, 1200.0)), ("wide", (8000.0, 32000.0)), ("none", None)):
        write_dicom_series(tmp_path / name, images, window=window)
        [containers[name]] = list(stream.collect_files([tmp_path / name]))
    verdict_png = "tumor" if (p_png >= shipped.study_rule.threshold).any() else "no_tumor"
    for name, item in containers.items():
        study, p = _study_probabilities(item, shipped)
        assert np.abs(p - p_png).max() <= 0.02, (name, float(np.abs(p - p_png).max()))
        assert study.prediction == verdict_png, name
        assert study.max_slice == int(np.argmax(p_png)), name


def test_dicom_display_follows_the_standard_with_no_second_stretch():
    """PS3.3 C.11.2.1.2 LINEAR at the window's edges and centre, for windows narrower and wider than the data."""
    for c, w in ((300.0, 300.0), (400.0, 800.0), (2000.0, 8000.0)):
        low_edge, high_edge = c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2
        x = np.array([low_edge - 10, low_edge, c - 0.5, high_edge, high_edge + 10])
        y = voi_window(x, c, w)
        expected = np.rint(np.clip(((x - (c - 0.5)) / (w - 1) + 0.5) * 255, 0, 255))
        expected[x <= low_edge], expected[x > high_edge] = 0, 255
        assert np.array_equal(y, expected.astype(np.uint8)), (c, w, y, expected)
    data = np.linspace(0, 1023, 64)
    wide = voi_window(data, 512, 4096)  # 4x wider than the data: the data fill the middle quarter
    assert 90 <= wide.min() <= 100 and 155 <= wide.max() <= 165
    assert voi_window(data, -2000, 100).min() == 255  # a window below the data: white, not black
    assert voi_window(data, 5000, 100).max() == 0
    assert voi_window(np.array([0.0, 100.0]), 100, 10, "SIGMOID")[1] == 128


def test_pydicom_windowing_agrees_with_ours(tmp_path):
    """pydicom's apply_windowing, mapped from its output range to 0..255, gives our display values."""
    from pydicom.pixels import apply_windowing

    write_dicom_series(tmp_path / "s", np.full((2, 16, 16), 40, np.uint8), window=(300.0, 300.0))
    import pydicom

    ds = pydicom.dcmread(sorted((tmp_path / "s").iterdir())[0])
    values = np.linspace(0, 4095, 200)
    theirs = apply_windowing(values, ds)  # y in 0 .. 2**BitsStored - 1
    ours = voi_window(values, 300.0, 300.0)
    assert np.abs(np.rint(theirs / 4095 * 255) - ours).max() <= 1


def test_a_display_window_changes_the_picture_never_the_model_input(tmp_path):
    images, _ = stack(6, size=64)
    [f] = write_dicom_series(tmp_path / "s", images[2:3], window=(1200.0, 1200.0))
    scan = open_scan(f)
    plane = scan.plane()
    shown, model = scan.display(plane), scan.model_image(plane)
    other = scan.frame(window=Window(300.0, 100.0))
    assert not np.array_equal(shown, other)
    assert np.array_equal(scan.model_frame(), model)
    narrow = open_scan(write_dicom_series(tmp_path / "t", images[2:3], window=(100.0, 10.0))[0])
    assert np.array_equal(narrow.model_frame(), model)
    # a window 4x wider than the 12-bit data shows the data in the middle quarter of the grey range
    ramp = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1))[None]
    wide = open_scan(write_dicom_series(tmp_path / "w", ramp, window=(2040.0, 16320.0))[0]).frame()[..., 0]
    assert 95 <= wide.min() <= 97 and 157 <= wide.max() <= 160


def test_a_two_d_nifti_is_an_image_and_its_confidence_is_its_answers(tmp_path, shipped):
    images, _ = stack(1, size=128)
    path = write_nifti(tmp_path / "one.nii", images.astype(np.int16))
    assert not open_scan(path).is_study
    [r] = list(stream.classify_files([path], shipped))
    assert r.ok and not r.is_study
    assert r.prediction == ("tumor" if r.tumor_probability >= shipped.detector.threshold else "no_tumor")
    assert r.confidence >= 0.5


def test_no_row_holds_two_answers(tmp_path, shipped):
    """Study row, per-slice rows and the shipped study rule agree: one threshold (50 % of the calibrated
    probability) on every row, so no row says "no tumour" beside a probability above it and every
    confidence, that of the stated answer, is at least 50 %; every slice the study counts says tumour,
    and a tumour slice it does not count stands outside any run of the rule's length."""
    images, _ = stack(size=128)
    (tmp_path / "in").mkdir()
    write_nifti(tmp_path / "in" / "v.nii", images.astype(np.int16))
    Image.fromarray(images[len(images) // 2]).save(tmp_path / "in" / "slice.png")
    out, per = tmp_path / "r.csv", tmp_path / "s.csv"
    assert cli.classify_main([str(tmp_path / "in"), "--csv", str(out), "--per-slice", str(per)]) == 0
    rows = list(csv.DictReader(out.open()))
    slices = list(csv.DictReader(per.open()))
    t = shipped.detector.threshold
    assert shipped.study_rule.threshold == t  # one threshold on every screen
    for row in rows + slices:
        p, conf = float(row["tumor_probability"]), float(row["confidence"])
        assert t == 0.5 and (p >= t) == (row["prediction"] == "tumor") and conf >= 0.5 - 1e-6
        assert conf == pytest.approx(p if row["prediction"] == "tumor" else 1 - p, abs=1e-6)
    [study] = [r for r in rows if r["n_slices"]]
    counted = set()
    for part in filter(None, study["tumor_slices"].split(";")):
        a, _, b = part.partition("-")
        counted |= set(range(int(a), int(b or a) + 1))
    said = {int(s["slice"]) for s in slices if s["prediction"] == "tumor"}
    assert counted <= said
    run = shipped.study_rule.run
    for k in said - counted:  # a tumour slice the study did not count lies in a run shorter than the rule's
        lo = hi = k
        while lo - 1 in said:
            lo -= 1
        while hi + 1 in said:
            hi += 1
        assert hi - lo + 1 < run


def test_slices_are_restated_by_a_study_rule_that_differs(tmp_path):
    """A card whose study threshold differs from its decision threshold: per-slice answers are said at the
    study's threshold, so no slice says tumour below the threshold the study counts by."""
    from gui.core.engine import study
    from gui.core.engine.result import Result

    p = np.array([0.2, 0.6, 0.75, 0.4])
    slices = [Result(path="v", prediction="tumor" if q >= 0.5 else "no_tumor", tumor_probability=q,
                     confidence=max(q, 1 - q), tumor_type="glioma" if q >= 0.5 else "", slice=k) for k, q in enumerate(p)]
    r = study.summarise("v", slices, study.StudyRule(1, 0.7), [])
    assert r.tumor_slices == "2"
    assert [s.prediction for s in r.slices] == ["no_tumor", "no_tumor", "tumor", "no_tumor"]
    assert r.slices[1].tumor_type == "" and r.slices[1].confidence == pytest.approx(0.4)


def test_the_file_you_open_is_the_file_you_see(tmp_path, shipped):
    images, _ = stack(9, size=64)
    files = write_dicom_series(tmp_path / "s", images, description="AX FLAIR")
    scan = open_study(files[2])
    assert scan.is_study and scan.path == files[2] and scan.default_frame == 2
    assert np.array_equal(scan.plane().values, open_scan(files[2]).plane().values)
    [row] = list(stream.classify_files(list(stream.collect_files([tmp_path / "s"])), shipped))
    assert row.series_description == "AX FLAIR"
    assert csvout.row(shipped, row)["series_description"] == "AX FLAIR"


def test_the_window_and_the_cli_agree_on_one_file_of_a_series(tmp_path, shipped):
    """The window scores the opened file's slice inside its series; ``classify FILE`` scores the file
    alone: the same answer (the series' scale and the file's own differ only by an affine map)."""
    images, _ = stack(size=128)
    files = write_dicom_series(tmp_path / "s", images, window=(1200.0, 1200.0))
    for f in (files[len(files) // 2], files[len(files) // 3]):
        scan = open_study(f)  # as the window's OpenWorker does: the shown plane, then its model view
        image, scale = scan.model_view(None, shipped.need, in_hand=scan.plane())
        in_window = shipped.classify_image(image, str(f), scale=scale)
        [alone] = list(stream.classify_files([f], shipped))
        assert alone.path == str(f) and not alone.is_study
        assert abs(in_window.tumor_probability - alone.tumor_probability) <= 0.02
        assert in_window.prediction == alone.prediction
