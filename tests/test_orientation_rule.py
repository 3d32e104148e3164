"""One orientation rule for the model: wherever a file states its orientation (DICOM
ImageOrientationPatient, per-frame functional groups, a NIfTI affine) the model gets the plane turned
to the viewer's radiological display; a DICOM series, its files opened one by one, an enhanced
multi-frame file and a converter's NIfTI of the same slices give the same answers in every orientation.
MONOCHROME1 and Presentation LUT Shape INVERSE are turned the right way up before the study's levels.
The sequence is named from the file's own tags."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from PIL import Image

from gui.core.engine import stream
from gui.core.engine.classifier import Classifier
from gui.core.engine.model import load_model
from gui.core.readers import open_scan
from gui.core.records import csvout
from gui.core.readers.sequence import sequence_from_text, sequence_from_timing
from gui.core.resources import bundled_models
from tests.series_factory import (
    ORIENTATIONS,
    converter_nifti,
    stack,
    write_dicom_series,
    write_enhanced_dicom,
)


@pytest.fixture(scope="module")
def shipped() -> Classifier:
    return Classifier([load_model(p) for p in bundled_models()])


@pytest.fixture(scope="module")
def shown():
    images, _ = stack(12, size=128)
    return images


def _per_slice(items, classifier) -> tuple[np.ndarray, list]:
    results = list(stream.classify_files(items, classifier))
    assert all(r.ok for r in results), [r.error for r in results]
    if len(results) == 1 and results[0].slices:
        return np.array([s.tumor_probability for s in results[0].slices]), results
    return np.array([r.tumor_probability for r in results]), results


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ORIENTATIONS))
def test_a_series_its_files_and_its_nifti_get_the_same_answers_in_every_orientation(tmp_path, shipped, shown, name):
    orientation = ORIENTATIONS[name]
    pngs = []
    for k, im in enumerate(shown):
        pngs.append(tmp_path / f"s{k:02d}.png")
        Image.fromarray(im).save(pngs[-1])
    p_png, _ = _per_slice(pngs, shipped)
    files = write_dicom_series(tmp_path / "series", shown, orientation=orientation)
    [series] = list(stream.collect_files([tmp_path / "series"]))
    p_series, [study] = _per_slice([series], shipped)
    p_files, _ = _per_slice(files, shipped)  # each file opened on its own
    p_nifti, [volume] = _per_slice([converter_nifti(tmp_path / "v.nii.gz", shown, orientation)], shipped)
    assert np.abs(p_files - p_series).max() <= 0.02, name
    assert np.abs(p_nifti - p_series).max() <= 0.02, name
    assert np.abs(p_series - p_png).max() <= 0.02, name
    assert study.prediction == volume.prediction and study.max_slice == volume.max_slice == int(np.argmax(p_files))
    alone = open_scan(files[3])
    together = open_scan(tmp_path / "v.nii.gz")
    assert alone.edges == together.edges  # the letters of the plane as shown agree too
    assert np.array_equal(alone.plane().values, shown[3] * 16.0)  # shown as the viewer shows the series


def test_an_enhanced_multi_frame_file_is_oriented_and_rescaled_per_frame(tmp_path, shipped, shown):
    orientation = ORIENTATIONS["sagittal"]
    enhanced = open_scan(write_enhanced_dicom(tmp_path / "mf.dcm", shown, orientation))
    files = write_dicom_series(tmp_path / "series", shown, orientation=orientation)
    [series] = list(stream.collect_files([tmp_path / "series"]))
    assert enhanced.info["orientation"] == "sagittal slices, radiological convention"
    assert (enhanced.edges.left, enhanced.edges.right, enhanced.edges.top) == ("A", "P", "S")
    for k in (0, 5, 11):  # frames stored in reverse order, odd ones halved with slope 2
        assert np.array_equal(enhanced.plane(k).values, open_scan(files[k]).plane().values), k
    p_mf, _ = _per_slice([tmp_path / "mf.dcm"], shipped)
    p_series, _ = _per_slice([series], shipped)
    assert np.abs(p_mf - p_series).max() <= 0.02


@pytest.mark.parametrize("photometric, shape", [("MONOCHROME1", None), ("MONOCHROME1", "INVERSE"),
                                                ("MONOCHROME2", "INVERSE")])
def test_an_inverted_file_feeds_the_model_what_its_upright_twin_does(tmp_path, shown, photometric, shape):
    """Each stores ``4080 - value`` and says so one way or the other: the same image on the screen and
    the same model input as the file storing ``value`` (the old code inverted after the study's
    percentiles, and ignored INVERSE)."""
    upright = open_scan(write_enhanced_dicom(tmp_path / "up.dcm", shown))
    path = write_enhanced_dicom(tmp_path / "inv.dcm", shown, photometric="MONOCHROME1", presentation_shape=shape)
    if photometric == "MONOCHROME2":
        ds = pydicom.dcmread(path)
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.save_as(path, enforce_file_format=True)
    inverted = open_scan(path)
    for k in (2, 6):
        assert np.allclose(inverted.model_frame(k), upright.model_frame(k), atol=1e-3), k
        assert np.abs(inverted.frame(k).astype(int) - upright.frame(k)).max() <= 1  # the screen shows it the same


def test_a_series_whose_orientations_differ_in_the_third_decimal_is_ordered_by_position(tmp_path, shown):
    files = write_dicom_series(tmp_path / "s", shown[:6], instance_numbers=[6, 5, 4, 3, 2, 1])
    for f in files[::2]:
        ds = pydicom.dcmread(f)
        ds.ImageOrientationPatient = [1, 0.004, 0, 0, 1, 0]  # the same plane, within rounding
        ds.save_as(f, enforce_file_format=True)
    [series] = list(stream.collect_files([tmp_path / "s"]))
    assert series.order == "position along the slice normal"
    assert list(series.files) == files


def test_the_sequence_is_named_from_the_files_own_tags(tmp_path, shown):
    write_dicom_series(tmp_path / "flair", shown[:3], description="AX T2 FLAIR")
    [series] = list(stream.collect_files([tmp_path / "flair"]))
    assert series.sequence == "flair" and open_scan(series.files[0]).sequence == "flair"
    assert [sequence_from_text(t) for t in ("T1 POST GD", "t2_tse_tra", "sag T1", "T2*", "DWI", "AX T1+C")] == \
        ["t1c", "t2", "t1", "", "", "t1c"]
    assert sequence_from_timing(9000, 120, 2500, False) == "flair"
    assert sequence_from_timing(500, 12, None, True) == "t1c"
    assert sequence_from_timing(4000, 100, None, False) == "t2"
    assert sequence_from_timing(30, 5, None, False) == "t1"  # a fast gradient echo with T1 timings
    assert sequence_from_timing(None, 80, None, False) == ""
    assert open_scan(tmp_path / "flair" / "IM0000.dcm").sequence == "flair"
    classifier = Classifier([load_model(p) for p in bundled_models()])
    [study] = list(stream.classify_files([series], classifier))
    [alone] = list(stream.classify_files([series.files[0]], classifier))
    [png] = list(stream.classify_files([_png(tmp_path, shown[0])], classifier))
    assert (study.sequence, alone.sequence) == ("flair", "flair")
    assert study.sequence_from == alone.sequence_from == "tags"
    # a PNG names no sequence: the bundled model's sequence head reads one, and says so
    assert png.sequence in ("t1", "t1c", "t2", "flair") and png.sequence_from == "model"
    assert 0.25 <= png.sequence_confidence <= 1
    assert csvout.row(classifier, study)["sequence"] == "flair"


def _png(tmp_path, image):
    path = tmp_path / "plain.png"
    Image.fromarray(image).save(path)
    return path


def test_the_models_sequence_reading_yields_to_the_files_tags_and_a_weak_sequence_is_cautioned(tmp_path, shown):
    from tests.onnx_factory import make_card, make_contract_model

    card = make_card("binary", 64)
    card["sequence_labels"] = ["t1", "t1c", "t2", "flair"]
    card["held_out_by_sequence"] = {"t1": {"sensitivity": 0.61, "measured_on": "radiopaedia"},
                                    "flair": {"sensitivity": 0.93}}
    model = make_contract_model(tmp_path / "seq.onnx", sequence=True, card=card)
    classifier = Classifier([load_model(model)])
    [png] = list(stream.classify_files([_png(tmp_path, np.full((64, 64), 200, np.uint8))], classifier))
    assert (png.sequence, png.sequence_from) == ("flair", "model") and png.sequence_confidence > 0.5
    assert "a tumour may be missed" not in png.ood_warning  # FLAIR held out at 93 %
    files = write_dicom_series(tmp_path / "t1", shown[:2], description="SAG T1")
    [alone] = list(stream.classify_files([files[0]], classifier))
    assert (alone.sequence, alone.sequence_from) == ("t1", "tags")  # the file says T1: the model's FLAIR yields
    assert "on T1 images this model found 61 % of held-out tumours" in alone.ood_warning
    assert csvout.row(classifier, alone)["sequence_from"] == "tags"
    card["sequence_labels"] = ["t1", "dwi", "t2", "flair"]
    with pytest.raises(Exception, match="sequence_labels"):
        load_model(make_contract_model(tmp_path / "bad.onnx", sequence=True, card=card))
