"""Property-based fuzzing of DICOM and NIfTI headers (Hypothesis): whatever the header says, a file
gives exactly one row (an answer or an error with a reason), never a traceback, in bounded memory."""

from __future__ import annotations

import gzip
import resource
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gui.core.engine import stream
from gui.core.engine.classifier import Classifier
from gui.core.engine.model import load_model
from tests.onnx_factory import make_contract_model

pytestmark = pytest.mark.slow
EXAMPLES = int(__import__("os").environ.get("FUZZ_EXAMPLES", 5_000))  # per format: 10,000 in all
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    classifier = Classifier([load_model(make_contract_model(folder / "m.onnx", multitask=True))])
    return folder, classifier, _rss_mb()


def one_row(path, classifier) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = list(stream.classify_files([path], classifier))
    assert len(rows) == 1, rows
    r = rows[0]
    assert r.ok or r.error, r
    if r.ok:
        assert r.prediction in ("tumor", "no_tumor") and 0.0 <= r.tumor_probability <= 1.0


numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32), st.integers(-70000, 70000))


@st.composite
def dicom_headers(draw):
    return {
        "rows": draw(st.integers(0, 40)), "cols": draw(st.integers(0, 40)),
        "frames": draw(st.one_of(st.none(), st.integers(0, 5))),
        "samples": draw(st.sampled_from([1, 1, 3, 2])),
        "photometric": draw(st.sampled_from(["MONOCHROME2", "MONOCHROME1", "RGB", "YBR_FULL", "YBR_FULL_422",
                                             "PALETTE COLOR", "BOGUS"])),
        "allocated": draw(st.sampled_from([8, 16, 32, 1, 12])), "stored": draw(st.integers(0, 33)),
        "signed": draw(st.integers(0, 1)),
        "slope": draw(st.one_of(st.none(), numbers)), "intercept": draw(st.one_of(st.none(), numbers)),
        "window": draw(st.one_of(st.none(), st.tuples(numbers, numbers), st.lists(numbers, min_size=0, max_size=3))),
        "function": draw(st.sampled_from([None, "LINEAR", "LINEAR_EXACT", "SIGMOID", "nonsense"])),
        "position": draw(st.one_of(st.none(), st.lists(numbers, min_size=0, max_size=4))),
        "orientation": draw(st.one_of(st.none(), st.lists(numbers, min_size=0, max_size=7))),
        "length_change": draw(st.sampled_from([0, 0, 0, -1, -7, 5])),
        "seed": draw(st.integers(0, 2**16)),
    }


def write_dicom(path, h) -> None:
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.Modality, ds.SeriesInstanceUID = "MR", generate_uid()
    ds.Rows, ds.Columns = h["rows"], h["cols"]
    if h["frames"] is not None:
        ds.NumberOfFrames = h["frames"]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = h["samples"], h["photometric"]
    if h["samples"] > 1:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored = h["allocated"], h["stored"]
    ds.HighBit, ds.PixelRepresentation = max(h["stored"] - 1, 0), h["signed"]
    for keyword in ("slope", "intercept"):
        if h[keyword] is not None:
            setattr(ds, "Rescale" + keyword.capitalize(), f"{h[keyword]:.6g}"[:16])
    if h["window"] is not None:
        values = list(h["window"])
        ds.WindowCenter = [f"{v:.6g}"[:16] for v in values[::2]] or ""
        ds.WindowWidth = [f"{v:.6g}"[:16] for v in values[1::2]] or ""
    if h["function"] is not None:
        ds.VOILUTFunction = h["function"]
    if h["position"] is not None:
        ds.ImagePositionPatient = [f"{v:.6g}"[:16] for v in h["position"]]
    if h["orientation"] is not None:
        ds.ImageOrientationPatient = [f"{v:.6g}"[:16] for v in h["orientation"]]
    n = max(h["frames"] or 1, 1) * h["rows"] * h["cols"] * h["samples"] * max(h["allocated"] // 8, 1)
    n = max(n + h["length_change"], 0)
    ds.PixelData = np.random.default_rng(h["seed"]).integers(0, 256, n + (n % 2), dtype=np.uint8).tobytes()
    ds.save_as(path, enforce_file_format=True)


NIFTI_TYPES = [np.uint8, np.int8, np.int16, np.uint16, np.int32, np.float32, np.float64, np.int64, np.complex64]


@st.composite
def nifti_headers(draw):
    ndim = draw(st.integers(1, 6))
    return {
        "shape": tuple(draw(st.lists(st.integers(1, 6), min_size=ndim, max_size=ndim))),
        "dtype": draw(st.sampled_from(NIFTI_TYPES)),
        "slope": draw(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=32))),
        "inter": draw(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=32))),
        "affine": draw(st.one_of(st.none(), st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32),
                                                     min_size=12, max_size=12))),
        "values": draw(st.sampled_from(["random", "zeros", "nan", "huge"])),
        "gzip": draw(st.booleans()), "truncate": draw(st.sampled_from([0, 0, 0, 1, 40])),
        "seed": draw(st.integers(0, 2**16)),
    }


def write_nifti(path, h):
    import nibabel as nib

    rng = np.random.default_rng(h["seed"])
    shape, dtype = h["shape"], h["dtype"]
    if h["values"] == "zeros":
        data = np.zeros(shape, dtype)
    elif h["values"] == "nan" and np.issubdtype(dtype, np.floating):
        data = np.full(shape, np.nan, dtype)
    elif h["values"] == "huge" and not np.issubdtype(dtype, np.complexfloating):
        data = np.full(shape, np.finfo(dtype).max if np.issubdtype(dtype, np.floating) else np.iinfo(dtype).max, dtype)
    else:
        data = (rng.random(shape) * 200).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        img = nib.Nifti1Image(data, np.eye(4), dtype=dtype)
        if h["slope"] is not None:
            img.header["scl_slope"] = h["slope"]
        if h["inter"] is not None:
            img.header["scl_inter"] = h["inter"]
        nib.save(img, path)
    raw = bytearray(path.read_bytes())
    if h["affine"] is not None:  # written into the header as is: nibabel refuses to write degenerate ones
        raw[252:256] = np.array([0, 1], "<i2").tobytes()  # qform_code 0, sform_code 1
        raw[280:328] = np.asarray(h["affine"], "<f4").tobytes()
    raw = raw[: max(len(raw) - h["truncate"], 0)]
    if h["gzip"]:
        path.unlink()
        path = path.with_name(path.name + ".gz")
        raw = gzip.compress(bytes(raw))
    path.write_bytes(bytes(raw))
    return path


def _rss_mb() -> float:
    """The process's peak resident memory so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


#: How far a header may raise the peak above what the test process had already reached (earlier tests
#: in the same run, TensorFlow ones included, set that): a header that makes a reader allocate what
#: its pixel data cannot fill would take gigabytes.
MAX_GROWTH_MB = 600


@FUZZ
@given(h=dicom_headers())
def test_any_dicom_header_gives_one_row(fuzz, h):
    folder, classifier, peak = fuzz
    path = folder / "f.dcm"
    write_dicom(path, h)
    one_row(path, classifier)
    assert _rss_mb() < peak + MAX_GROWTH_MB


@FUZZ
@given(h=nifti_headers())
def test_any_nifti_header_gives_one_row(fuzz, h):
    folder, classifier, peak = fuzz
    for old in folder.glob("f.nii*"):
        old.unlink()
    path = write_nifti(folder / "f.nii", h)
    one_row(path, classifier)
    assert _rss_mb() < peak + MAX_GROWTH_MB
