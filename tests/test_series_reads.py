"""A DICOM series' files are read as few times as the work needs: each header once when grouping, each
slice once more for its pixels, a study row's picture from its key slice's file alone; a deflated
header is never inflated whole by a folder scan."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")

from gui.core.engine import pictures, stream  # noqa: E402
from gui.core.engine.classifier import Classifier  # noqa: E402
from gui.core.engine.model import load_model  # noqa: E402
from gui.core.readers import dicom, dicom_series, is_study_file, open_study  # noqa: E402
from gui.core.readers.dicom import may_be_deflated  # noqa: E402
from gui.core.readers.sniff import read_head  # noqa: E402
from tests.onnx_factory import make_contract_model  # noqa: E402
from tests.series_factory import write_dicom_series  # noqa: E402

DEFLATED = "1.2.840.10008.1.2.1.99"


@pytest.fixture
def classifier(tmp_path):
    return Classifier([load_model(make_contract_model(tmp_path / "det.onnx", "binary"))])


def _slices(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.random((n, 40, 40)) * 200).astype(np.uint8)


def _spy(monkeypatch, module, name) -> list:
    calls, real = [], getattr(module, name)

    def counted(path, *args, **kwargs):
        calls.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def _header_reads(monkeypatch) -> list:
    """Files whose header pydicom parses without pixels (a full read, for pixels, is not counted)."""
    calls, real = [], dicom.read_dataset

    def counted(path, *args, **kwargs):
        if kwargs.get("stop_before_pixels"):
            calls.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(dicom, "read_dataset", counted)
    return calls


def test_a_series_is_grouped_from_one_header_read_and_scored_from_one_pixel_read_per_slice(
        classifier, tmp_path, monkeypatch):
    files = write_dicom_series(tmp_path / "s", _slices(9))
    headers = _header_reads(monkeypatch)
    [series] = list(stream.collect_files([tmp_path / "s"]))
    assert sorted(headers) == sorted(files)  # one header read per file
    opened = _spy(monkeypatch, dicom_series, "open_dicom")
    deflate_checks = _spy(monkeypatch, dicom, "check_deflated")
    [row] = list(stream.classify_files([series], classifier))
    assert row.ok and row.n_slices == 9 and row.series == series
    assert not deflate_checks  # headers known from grouping: no second look at the file meta
    assert sorted(set(opened)) == sorted(files) and len(opened) <= 2 * 9  # the levels' sample, then each slice
    # The row's picture (thumbnail, preview, heatmap export) reads the key slice's file, never the folder.
    headers.clear()
    opened.clear()
    picture = pictures.result_frame(row)
    assert headers == [] and opened == [series.files[row.max_slice]]
    assert np.array_equal(picture, open_study(series.files[0]).frame(row.max_slice))


def test_a_deflated_series_is_still_checked_slice_by_slice(classifier, tmp_path, monkeypatch):
    write_dicom_series(tmp_path / "d", _slices(3), transfer_syntax=DEFLATED)
    [series] = list(stream.collect_files([tmp_path / "d"]))
    assert series.deflated == (True, True, True)
    checks = _spy(monkeypatch, dicom, "check_deflated")
    [row] = list(stream.classify_files([series], classifier))
    assert row.ok and row.n_slices == 3 and len(checks) >= 3


def test_a_deflate_bomb_in_a_folder_is_refused_before_its_header_is_inflated(classifier, tmp_path, monkeypatch):
    monkeypatch.setattr(dicom, "MAX_INFLATED_BYTES", 200_000)
    folder = tmp_path / "mixed"
    write_dicom_series(folder, _slices(2))
    [bomb] = write_dicom_series(folder, np.zeros((1, 400, 400), np.uint8), names=["bomb.dcm"],
                                transfer_syntax=DEFLATED)  # 320 kB inflated, a few hundred bytes stored
    assert bomb.stat().st_size < 20_000
    headers = _header_reads(monkeypatch)
    items = list(stream.collect_files([folder]))
    assert bomb in items and bomb not in headers  # alone, and never parsed: the inflate check refused it
    assert not is_study_file(bomb)
    rows = {str(r.path): r for r in stream.classify_files(items, classifier)}
    assert "expands to more than" in rows[str(bomb)].error


def test_the_first_bytes_say_whether_a_file_may_be_deflated(tmp_path):
    [plain] = write_dicom_series(tmp_path / "p", _slices(1))
    [deflated] = write_dicom_series(tmp_path / "q", _slices(1), transfer_syntax=DEFLATED)
    assert not may_be_deflated(read_head(plain))
    assert may_be_deflated(read_head(deflated))
    assert may_be_deflated(read_head(plain)[:150])  # the meta group does not end inside these bytes
    assert not may_be_deflated(b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 100")  # a raw dataset has no file meta
