"""Series mode: volumes and DICOM series read in slice order, every slice scored, one row per study."""

from __future__ import annotations

import csv
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gui.core.engine import stream
from gui.core.engine.classifier import Classifier
from gui.core.records import csvout
from gui.core.engine.model import load_model
from gui.core.readers import (
    DicomSeries,
    ImageReadError,
    open_item,
    open_scan,
    open_study,
)
from gui.core.readers.orientation import display_plan
from gui.core.engine.result import Result
from gui.core.engine.study import (
    StudyRule,
    format_ranges,
    study_score,
    summarise,
    tumour_ranges,
)
from tests.onnx_factory import make_contract_model
from tests.series_factory import stack, write_dicom_series, write_nifti


@pytest.fixture
def classifier(tmp_path) -> Classifier:
    return Classifier([load_model(make_contract_model(tmp_path / "d.onnx", multitask=True))])


def grey(frame: np.ndarray) -> np.ndarray:
    return frame[..., 0].astype(np.int16)


def same_picture(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to the reader's grey windowing: correlation of the two pictures."""
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return a.std() > 0 and b.std() > 0 and np.corrcoef(a, b)[0, 1] > 0.99


# ---------------------------------------------------------------- the rule


def test_study_rule_score_ranges_and_summary():
    p = np.array([0.1, 0.8, 0.2, 0.75, 0.9, 0.72, 0.3])
    assert study_score(p, StudyRule(1, 0.7)) == pytest.approx(0.9)
    assert study_score(p, StudyRule(2, 0.7)) == pytest.approx(0.75)  # best pair (0.75, 0.9)
    assert study_score(p, StudyRule(4, 0.7)) < 0.7
    assert tumour_ranges(p, StudyRule(1, 0.7)) == [(1, 1), (3, 5)]
    assert tumour_ranges(p, StudyRule(2, 0.7)) == [(3, 5)]
    assert format_ranges([(3, 5), (9, 9)]) == "3-5;9"
    slices = [Result(path="v", tumor_probability=float(x), prediction="tumor" if x >= .5 else "no_tumor", slice=k)
              for k, x in enumerate(p)]
    slices[2] = Result(path="v", status="error", error="damaged", slice=2)
    r = summarise("v", slices, StudyRule(2, 0.7), ["4-D file"])
    assert (r.prediction, r.max_slice, r.tumor_slices, r.n_slices) == ("tumor", 4, "3-5", 7)
    assert r.tumor_probability == pytest.approx(0.75)
    assert "4-D file" in r.ood_warning and "1 of 7 slices could not be read (slice 2: damaged)" in r.ood_warning
    none = summarise("v", [Result(path="v", status="error", error="bad", slice=0)], StudyRule(), [])
    assert none.status == "error" and "bad" in none.error


# ---------------------------------------------------------------- reading


def test_nifti_slices_along_the_third_axis_in_radiological_display(tmp_path):
    images, _ = stack(6, size=40)
    images = images.copy()
    images[:, :5, :5] = 255  # a marker top-left: anterior and the patient's right
    path = write_nifti(tmp_path / "v.nii", images)
    scan = open_scan(path)
    assert scan.is_study and scan.n_frames == 6 and "axial" in scan.info["orientation"]
    for k in (0, 3, 5):
        assert same_picture(grey(scan.frame(k)), images[k])
    assert scan.frame(2)[:5, :5].min() == 255
    # The same data stored with the first two axes flipped (an LPS affine): displayed the same way.
    import nibabel as nib

    ras = nib.load(path)
    lps = nib.Nifti1Image(np.asarray(ras.dataobj)[::-1, ::-1], ras.affine @ np.diag([-1, -1, 1, 1]) @ _shift(ras.shape))
    nib.save(lps, tmp_path / "lps.nii")
    assert np.array_equal(open_scan(tmp_path / "lps.nii").frame(2), scan.frame(2))


def _shift(shape) -> np.ndarray:
    t = np.eye(4)
    t[0, 3], t[1, 3] = shape[0] - 1, shape[1] - 1
    return t


def test_display_plans_for_the_three_planes():
    assert display_plan(np.eye(4)).plane == "axial"
    sagittal = np.array([[0, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]], float)
    plan = display_plan(sagittal)
    # array axis 0 runs along +y (anterior): it becomes the columns, flipped so anterior is on the left;
    # axis 1 runs along +z: the rows, flipped so superior is up
    assert (plan.plane, plan.transpose, plan.flip_cols, plan.flip_rows) == ("sagittal", True, True, True)
    assert display_plan(np.zeros((4, 4))) is None


def test_dicom_series_ordered_by_position_from_shuffled_files(tmp_path):
    images, _ = stack(12, size=48)
    order = list(range(12))
    random.Random(3).shuffle(order)
    # file names and instance numbers shuffled; only the positions give the true order
    files = write_dicom_series(tmp_path / "s", images[order],
                               names=[f"x{random.Random(k).randint(0, 10**6):07d}_{k}.dcm" for k in range(12)],
                               positions=[3.0 * k for k in order], instance_numbers=[100 - k for k in range(12)])
    items = list(stream.collect_files([tmp_path / "s"]))
    assert len(items) == 1 and isinstance(items[0], DicomSeries)
    scan = open_item(items[0])
    assert scan.is_study and scan.n_frames == 12 and scan.notes == []
    for k in range(12):  # slice k is the file at the k-th position from the feet up, shown as stored
            assert np.array_equal(scan.plane(k).values, open_scan(files[order.index(k)]).plane(0).values), k
    assert same_picture(grey(scan.frame(6)), images[6])
    assert "Doe" not in repr(scan.info) and "SECRET" not in repr(scan.info)
    # opening one file of the series in the window opens the whole series
    assert open_study(items[0].files[5]).n_frames == 12


def test_a_missing_slice_is_said_and_the_rest_scored(tmp_path, classifier):
    images, _ = stack(10, size=48)
    keep = [k for k in range(10) if k != 6]
    write_dicom_series(tmp_path / "s", images[keep], positions=[3.0 * k for k in keep])
    [r] = list(stream.classify_files(stream.collect_files([tmp_path / "s"]), classifier))
    assert r.ok and r.n_slices == 9
    assert "1 slice(s) missing between slices 5 and 6" in r.ood_warning


def test_slices_of_different_sizes_are_an_error_row_with_the_reason(tmp_path, classifier):
    uid = "1.2.3.4.5"
    images, _ = stack(4, size=48)
    write_dicom_series(tmp_path / "s", images, uid=uid)
    small, _ = stack(2, size=32)
    write_dicom_series(tmp_path / "s", small, uid=uid, names=["Z1.dcm", "Z2.dcm"], positions=[12.0, 15.0])
    [r] = list(stream.classify_files(stream.collect_files([tmp_path / "s"]), classifier))
    assert r.status == "error" and "different sizes" in r.error and "48x48" in r.error and "32x32" in r.error


def test_a_4d_file_is_scored_on_its_first_volume_and_says_so(tmp_path, classifier):
    images, _ = stack(5, size=40)
    write_nifti(tmp_path / "f.nii.gz", images, volumes=3)
    [r] = list(stream.classify_files([tmp_path / "f.nii.gz"], classifier))
    assert r.ok and r.n_slices == 5 and "only volume 1 of 3" in r.ood_warning


def test_a_one_slice_volume_is_an_image_not_a_study(tmp_path, classifier):
    images, _ = stack(1, size=40)
    write_nifti(tmp_path / "one.nii", images)
    [r] = list(stream.classify_files([tmp_path / "one.nii"], classifier))
    assert r.ok and not r.is_study and (r.n_slices, r.max_slice) == (None, None)


# ---------------------------------------------------------------- scoring


def test_the_key_slice_is_the_most_suspicious_and_slices_cost_what_images_cost(tmp_path, classifier):
    """The synthetic model calls bright images tumours: one bright slice must be the key slice, and
    a slice scores exactly what the same picture scores as its own file."""
    images, _ = stack(9, size=64)
    images = (images // 4).astype(np.uint8)
    images[6] = np.maximum(images[6], 200)
    path = write_nifti(tmp_path / "v.nii", images)
    [r] = list(stream.classify_files([path], classifier))
    assert r.max_slice == 6 and r.prediction == "tumor" and r.tumor_slices.startswith("6")
    scan = open_scan(path)
    alone = classifier.classify_image(scan.frame(6))
    assert r.slices[6].tumor_probability == pytest.approx(alone.tumor_probability, abs=1e-6)
    assert [s.slice for s in r.slices] == list(range(9))


def test_headless_rows_per_study_and_per_slice(tmp_path):
    model = make_contract_model(tmp_path / "d.onnx", multitask=True)
    images, _ = stack(8, size=48)
    folder = tmp_path / "in"
    write_dicom_series(folder, images, series_number=1)
    write_dicom_series(folder, images[:5], series_number=2, names=[f"B{k}.dcm" for k in range(5)])
    from PIL import Image

    Image.fromarray(images[0]).save(folder / "single.png")
    write_nifti(folder / "vol.nii", images[:6])
    out, per = tmp_path / "o.csv", tmp_path / "slices.csv"
    proc = subprocess.run([sys.executable, "-c", "import sys; from gui.launcher import main; sys.exit(main(sys.argv[1:]))",
                           "classify", str(folder), "--csv", str(out), "--per-slice", str(per), "--model", str(model)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(out.open()))
    by_slices = sorted((r["n_slices"], Path(r["path"]).suffix) for r in rows)
    assert by_slices == [("", ".png"), ("5", ".dcm"), ("6", ".nii"), ("8", ".dcm")]
    header = out.read_text().splitlines()[0].split(",")
    assert header[9:17] == ["models_disagree", "n_slices", "max_slice", "tumor_slices", "series_description",
                            "sequence", "sequence_from", "heatmap"]
    assert header[17].startswith("p_")
    slices = list(csv.DictReader(per.open()))
    assert len(slices) == 8 + 5 + 6 and list(slices[0])[:3] == ["path", "slice", "status"]
    assert "Doe" not in out.read_text() + per.read_text() and "SECRET" not in out.read_text()


@pytest.mark.slow
def test_a_thousand_slice_volume_streams_in_flat_memory(tmp_path):
    """1,000 slices of 128x128 as a plain .nii: decoded RGB frames would take 49 MB and the fitted
    inputs far more; the Python heap's peak while scoring stays a fraction of that."""
    import nibabel as nib

    rng = np.random.default_rng(0)
    data = (rng.random((128, 128, 1000)) * 300).astype(np.int16)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "big.nii")
    model = make_contract_model(tmp_path / "d.onnx", multitask=True)
    code = (
        "import tracemalloc, sys\n"
        "from pathlib import Path\n"
        "from gui.core.engine import stream\nfrom gui.core.engine.classifier import Classifier\nfrom gui.core.engine.model import load_model\n"
        f"clf = Classifier([load_model(Path({str(model)!r}))])\n"
        "tracemalloc.start()\n"
        f"[r] = list(stream.classify_files([Path({str(tmp_path / 'big.nii')!r})], clf))\n"
        "assert r.ok and r.n_slices == 1000, r\n"
        "print(tracemalloc.get_traced_memory()[1] / 1e6)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    peak_mb = float(proc.stdout.strip().splitlines()[-1])
    assert peak_mb < 30, peak_mb


def test_the_study_rule_comes_from_the_card(tmp_path):
    from tests.onnx_factory import make_card

    card = make_card("binary", 64)
    card["series_rule"] = {"run": 3, "threshold": 0.8}
    m = load_model(make_contract_model(tmp_path / "r.onnx", card=card))
    assert Classifier([m]).study_rule == StudyRule(3, 0.8)
    card["series_rule"] = {"run": 0, "threshold": 0.8}
    from gui.core.engine.model import ModelContractError

    with pytest.raises(ModelContractError, match="series rule"):
        load_model(make_contract_model(tmp_path / "bad.onnx", card=card))
    plain = load_model(make_contract_model(tmp_path / "p.onnx"))
    assert plain.study_rule == StudyRule(1, plain.threshold)


def test_unreadable_series_file_is_a_slice_error_not_a_lost_study(tmp_path, classifier):
    images, _ = stack(6, size=48)
    paths = write_dicom_series(tmp_path / "s", images)
    items = list(stream.collect_files([tmp_path / "s"]))
    raw = paths[3].read_bytes()
    paths[3].write_bytes(raw[: len(raw) - 2000])  # pixel data cut after grouping
    [r] = list(stream.classify_files(items, classifier))
    assert r.ok and r.n_slices == 6 and "1 of 6 slices could not be read (slice 3" in r.ood_warning
    assert r.slices[3].status == "error"
    with pytest.raises(ImageReadError):
        open_scan(paths[3]).frame(0)


def test_a_multi_frame_dicom_is_one_study(tmp_path, classifier):
    import pydicom

    images, _ = stack(7, size=48)
    [one] = write_dicom_series(tmp_path / "mf", images[:1])
    ds = pydicom.dcmread(one)
    ds.NumberOfFrames = 7
    ds.PixelData = (images.astype(np.uint16) * 16).tobytes()
    ds.save_as(tmp_path / "multi.dcm")
    scan = open_scan(tmp_path / "multi.dcm")
    assert scan.is_study and scan.n_frames == 7
    [r] = list(stream.classify_files([tmp_path / "multi.dcm"], classifier))
    assert r.ok and r.n_slices == 7 and len(r.slices) == 7 and 0 <= r.max_slice < 7
    [s] = list(stream.classify_files([one], classifier))  # a lone single-frame DICOM stays a single image
    assert s.ok and s.n_slices is None and csvout.row(classifier, s)["n_slices"] == ""
