"""Hostile files and targets: the offline promise at the system-call level, and inputs that used to hang,
exhaust memory, abort the run or lose the CSV. Each test failed before its fix."""

from __future__ import annotations

import csv
import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("onnx")

from gui.core.commands import classify as cli  # noqa: E402
from gui.core.records import heatmaps  # noqa: E402
from gui.core.records import csvout  # noqa: E402
from gui.core.engine import stream  # noqa: E402
from gui.core.engine.classifier import Classifier
from gui.core.engine.model import ModelContractError, load_model  # noqa: E402
from gui.core.readers import MAX_PIXELS, ImageReadError, open_scan, read_image
from tests.onnx_factory import make_card, make_contract_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def jpeg(path: Path, value: int = 120, size: int = 64) -> Path:
    rng = np.random.default_rng(value)
    Image.fromarray((rng.random((size, size)) * value).astype(np.uint8)).save(path, "JPEG")
    return path


@pytest.fixture
def model_file(tmp_path) -> Path:
    (tmp_path / "models").mkdir()
    return make_contract_model(tmp_path / "models" / "d.onnx")


@pytest.fixture
def folder(tmp_path) -> Path:
    f = tmp_path / "f"
    f.mkdir()
    jpeg(f / "good.jpg")
    return f


def run_cli(model_file: Path, *args: str) -> int:
    return cli.classify_main([*args, "--model", str(model_file)])


def rows_of(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def peak_memory_mb(code: str) -> float:
    """Run ``code`` in a fresh interpreter and return its peak resident memory (Linux VmHWM)."""
    probe = code + "\nprint([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip().splitlines()[-1]) / 1024


# ---------------------------------------------------------------- 1. no network, no telemetry


@pytest.mark.slow
def test_no_telemetry_or_connection_at_the_system_call_level(tmp_path, folder, model_file):
    """ONNX Runtime's telemetry starts ~10 s into a run: classify, then stay alive 12 s more."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    env["HOME"] = str(home)
    code = ("import sys, time; from gui.launcher import main; "
            f"rc = main(['classify', {str(folder)!r}, '--csv', {str(tmp_path / 'o.csv')!r}, '--model', {str(model_file)!r}]); "
            "time.sleep(12); sys.exit(rc)")
    cmd = [sys.executable, "-c", code]
    trace = tmp_path / "strace.txt"
    if shutil.which("strace"):
        cmd = ["strace", "-f", "-e", "trace=connect", "-o", str(trace)] + cmd
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert not (home / ".cache" / "Microsoft").exists()
    assert list(home.rglob("*")) == []
    if trace.exists():
        lines = [ln for ln in trace.read_text().splitlines() if "AF_INET" in ln]
        assert lines == [], lines


# ---------------------------------------------------------------- 2. special files


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_is_an_error_row_not_a_hang(tmp_path, folder, model_file):
    os.mkfifo(folder / "a.dcm")
    out = tmp_path / "o.csv"
    code = (f"import sys; from gui.launcher import main; sys.exit(main(['classify', {str(folder)!r}, '--csv', {str(out)!r}, "
            f"'--model', {str(model_file)!r}]))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    rows = {Path(r["path"]).name: r for r in rows_of(out)}
    assert rows["good.jpg"]["status"] == "ok"
    assert rows["a.dcm"]["status"] == "error" and "not a regular file" in rows["a.dcm"]["error"]
    assert "FIFO" in rows["a.dcm"]["error"]


# ---------------------------------------------------------------- 3. memory bombs


def test_a_one_pixel_high_strip_is_never_padded_to_a_giant_square(tmp_path, model_file):
    strip = tmp_path / "strip.png"
    Image.new("L", (40000, 1), 200).save(strip)
    assert strip.stat().st_size < 1000
    mb = peak_memory_mb(
        f"from gui.core.engine.classifier import Classifier; from gui.core.engine.model import load_model; from gui.core.readers import read_image\n"
        f"c = Classifier([load_model({str(model_file)!r})]); r = c.classify_image(read_image({str(strip)!r}))\n"
        "assert r.ok, r.error")
    assert mb < 1000


@pytest.mark.slow
def test_a_gzip_bomb_nifti_is_refused_from_its_header(tmp_path):
    import nibabel as nib

    bomb = tmp_path / "bomb.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((1024, 1024, 256), np.float32), np.eye(4)), bomb)  # 1 GiB inflated
    assert bomb.stat().st_size < 10_000_000
    t0 = time.perf_counter()
    mb = peak_memory_mb(
        "from gui.core.readers import read_image, ImageReadError\n"
        f"try:\n    read_image({str(bomb)!r})\nexcept ImageReadError as e:\n    assert 'limit' in e.reason, e.reason\n"
        "else:\n    raise SystemExit('bomb accepted')")
    assert mb < 1000 and time.perf_counter() - t0 < 60


def test_a_four_d_nifti_reads_only_its_first_volume(tmp_path):
    import nibabel as nib

    data = np.zeros((32, 32, 8, 40), np.int16)
    data[..., 0] = 100
    data[..., 1:] = 7
    path = tmp_path / "fmri.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    scan = open_scan(path)
    assert scan.n_frames == 8 and "volume 1 of 40" in scan.info["size"]
    assert scan.frame().max() == 0  # constant first volume: black, not the later volumes' 7s


def test_deflated_dicom_above_the_pixel_limit_is_refused_before_decoding(tmp_path):
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid

    side = int(np.sqrt(MAX_PIXELS)) + 100
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Rows = ds.Columns = side
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation, ds.SamplesPerPixel = 7, 0, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = bytes(side * side)
    path = tmp_path / "bomb.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert path.stat().st_size < 1_000_000
    with pytest.raises(ImageReadError, match="limit"):
        read_image(path)


# ---------------------------------------------------------------- 4. odd names, heatmap failures


@pytest.mark.skipif(sys.platform != "linux", reason="non-UTF-8 file names are a POSIX byte-name matter")
def test_a_non_utf8_file_name_is_a_row_not_an_abort(tmp_path, folder, model_file):
    shutil.copy(folder / "good.jpg", os.fsdecode(bytes(folder) + b"/a\xff.jpg"))
    out = tmp_path / "o.csv"
    assert run_cli(model_file, str(folder), "--csv", str(out)) == 0
    names = sorted(Path(r["path"]).name for r in rows_of(out))
    assert names == ["a\\xff.jpg", "good.jpg"]


def test_long_names_and_failing_heatmaps_become_rows(tmp_path, folder, model_file, monkeypatch):
    long_name = "x" * 247 + ".jpg"  # 251 characters: legal, but NAME.heatmap.png is not
    shutil.copy(folder / "good.jpg", folder / long_name)
    out, heat = tmp_path / "o.csv", tmp_path / "heat"
    assert run_cli(model_file, str(folder), "--csv", str(out), "--heatmaps", str(heat)) == 0
    assert len(list(heat.iterdir())) == 2 and all(len(p.name.encode()) <= 255 for p in heat.iterdir())

    def full_disk(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(heatmaps, "save_overlay_png", full_disk)
    out2 = tmp_path / "o2.csv"
    assert run_cli(model_file, str(folder), "--csv", str(out2), "--heatmaps", str(tmp_path / "heat2")) == 1
    rows = rows_of(out2)
    assert len(rows) == 2 and all(r["status"] == "error" and "No space left" in r["error"] for r in rows)
    assert all(r["prediction"] for r in rows)  # the classification is kept in the row

    def no_memory(*_a, **_k):
        raise MemoryError

    monkeypatch.setattr(heatmaps, "save_overlay_png", no_memory)
    out3 = tmp_path / "o3.csv"
    assert run_cli(model_file, str(folder), "--csv", str(out3), "--heatmaps", str(tmp_path / "heat3")) == 1
    assert all("out of memory" in r["error"] for r in rows_of(out3))


# ---------------------------------------------------------------- 5. never replace a CSV by surprise


def test_a_csv_that_appears_during_the_run_is_kept(tmp_path):
    target = tmp_path / "o.csv"
    writer = csvout.AtomicCsv(target, ["a"])
    writer.write({"a": "1"})
    target.write_text("someone else's results\n")
    written = writer.publish()
    assert target.read_text() == "someone else's results\n"
    assert written == tmp_path / "o-1.csv" and rows_of(written) == [{"a": "1"}]


def test_an_interrupted_forced_run_keeps_the_complete_csv(tmp_path, folder, model_file, monkeypatch, capsys):
    out = tmp_path / "o.csv"
    out.write_text("complete,results\n")
    real = stream.classify_files

    def interrupted(*a, **k):
        for r in real(*a, **k):
            yield r
            raise KeyboardInterrupt

    monkeypatch.setattr(stream, "classify_files", interrupted)
    jpeg(folder / "second.jpg", 90)
    assert run_cli(model_file, str(folder), "--csv", str(out), "--force") == 130
    assert out.read_text() == "complete,results\n"
    assert len(rows_of(tmp_path / "o-1.csv")) == 1
    assert "kept" in capsys.readouterr().err


def test_the_csv_may_not_be_one_of_the_inputs(tmp_path, folder, model_file):
    scan = folder / "good.jpg"
    before = scan.read_bytes()
    assert run_cli(model_file, str(scan), "--csv", str(scan), "--force") == 2
    assert scan.read_bytes() == before


# ---------------------------------------------------------------- 6. formula injection


def test_formula_like_cells_are_neutralised(tmp_path, folder, model_file, monkeypatch):
    shutil.copy(folder / "good.jpg", folder / "=HYPERLINK(1).jpg")
    shutil.copy(folder / "good.jpg", folder / "@SUM(1).jpg")
    out = tmp_path / "o.csv"
    monkeypatch.chdir(folder)  # relative paths: the cell starts with the file name
    assert run_cli(model_file, ".", "--csv", str(out)) == 0
    cells = [r["path"] for r in rows_of(out)]
    risky = [c for c in cells if "HYPERLINK" in c or "SUM" in c]
    assert len(risky) == 2 and all(c.startswith("'") for c in risky)
    assert csvout.csv_safe("-1+2") == "'-1+2" and csvout.csv_safe("\tx") == "'\tx" and csvout.csv_safe("a=b") == "a=b"


# ---------------------------------------------------------------- 7. exit codes and refused models


@pytest.mark.parametrize("card_json", ["3", "null", "[1, 2]"])
def test_a_card_that_is_not_an_object_is_refused_with_exit_2(tmp_path, folder, card_json, capsys):
    path = make_contract_model(tmp_path / "m.onnx")
    import onnx

    proto = onnx.load(str(path))
    proto.metadata_props[0].value = card_json
    onnx.save(proto, str(path))
    assert run_cli(path, str(folder), "--csv", str(tmp_path / "o.csv")) == 2
    err = capsys.readouterr().err
    assert "JSON object" in err and "Traceback" not in err


@pytest.mark.parametrize("threshold", ["0.5", None, True, 7])
def test_a_bad_threshold_is_refused(tmp_path, threshold):
    card = make_card("binary", 64)
    card["decision_threshold"] = threshold
    with pytest.raises(ModelContractError, match="threshold"):
        load_model(make_contract_model(tmp_path / "m.onnx", card=card))


def test_a_model_whose_labels_all_mean_no_tumour_is_refused(tmp_path):
    card = make_card("tumor-type", 64)
    card["no_tumor_labels"] = list(card["labels"])
    with pytest.raises(ModelContractError, match="cannot find a tumour"):
        load_model(make_contract_model(tmp_path / "m.onnx", "tumor-type", card=card))


def test_nan_outputs_become_error_rows(tmp_path, folder):
    model = make_contract_model(tmp_path / "nan.onnx", nan=True)
    out = tmp_path / "o.csv"
    assert run_cli(model, str(folder), "--csv", str(out)) == 1
    (row,) = rows_of(out)
    assert row["status"] == "error" and "NaN" in row["error"] and row["tumor_probability"] == ""


def test_bad_targets_are_refused_before_any_work(tmp_path, folder, model_file, monkeypatch, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert run_cli(model_file, str(folder), "--csv", str(tmp_path / "o.csv"), "--heatmaps", str(a_file)) == 2
    assert run_cli(model_file, str(folder), "--csv", str(tmp_path)) == 2
    assert not (tmp_path / "o.csv").exists()

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(csvout.AtomicCsv, "__init__", full)
    assert run_cli(model_file, str(folder), "--csv", str(tmp_path / "o.csv")) == 2
    assert "No space left" in capsys.readouterr().err


def test_ctrl_c_during_start_up_is_a_sentence(tmp_path, folder, model_file, monkeypatch, capsys):
    def interrupted(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "load_models", interrupted)
    assert run_cli(model_file, str(folder), "--csv", str(tmp_path / "o.csv")) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err


# ---------------------------------------------------------------- 8. silent outcomes, scanning by content


def test_an_empty_folder_says_so_and_hints_at_recursive(tmp_path, model_file, capsys):
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    jpeg(empty / "sub" / "x.jpg")
    (empty / "notes.txt").write_text("not an image")
    assert run_cli(model_file, str(empty), "--csv", str(tmp_path / "o.csv")) == 2
    err = capsys.readouterr().err
    assert "no image files found" in err and "--recursive" in err
    assert not (tmp_path / "o.csv").exists()


def test_folder_scans_go_by_content(tmp_path, folder):
    from pydicom.data import get_testdata_file

    shutil.copy(get_testdata_file("MR_small.dcm"), folder / "1.2.840.113619.2.5")
    shutil.copy(folder / "good.jpg", folder / "scan.jfif")
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.png").write_bytes(b"not really a png")
    names = sorted(p.name for p in stream.collect_files([folder]))
    assert names == ["1.2.840.113619.2.5", "broken.png", "good.jpg", "scan.jfif"]


def test_an_unreadable_sub_folder_is_an_error_row(tmp_path, folder, monkeypatch):
    locked = folder / "locked"
    locked.mkdir()
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(path) == locked:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    files = list(stream.collect_files([folder], recursive=True))
    assert locked in files
    monkeypatch.setattr(os, "access", lambda *_a, **_k: False)
    with pytest.raises(ImageReadError, match="cannot be read"):
        read_image(locked)


# ---------------------------------------------------------------- 9. messages


def test_a_2d_nifti_with_a_non_ras_affine_loads(tmp_path):
    import nibabel as nib

    affine = np.diag([-1.0, -1.0, 1.0, 1.0])  # LPS: nibabel's canonical reorientation refused 2-D data
    path = tmp_path / "slice.nii"
    nib.save(nib.Nifti1Image(np.arange(48, dtype=np.float32).reshape(8, 6), affine), path)
    assert read_image(path).shape[:2] in ((6, 8), (8, 6))


def test_a_damaged_jpeg_dicom_does_not_ask_for_a_decoder_that_is_there(tmp_path):
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.encaps import encapsulate, generate_fragments

    ds = pydicom.dcmread(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm"))
    frames = [f for f in generate_fragments(ds.PixelData) if len(f) > 100]
    ds.PixelData = encapsulate([frames[0][: len(frames[0]) // 2]])  # the JPEG stream cut in half
    path = tmp_path / "damaged.dcm"
    ds.save_as(path)
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert "install" not in info.value.reason and "damaged" in info.value.reason


# ---------------------------------------------------------------- 10. temporary files


def test_stale_temporary_files_are_cleaned_and_sigterm_writes_the_rows(tmp_path, folder, model_file):
    out = tmp_path / "o.csv"
    stale = tmp_path / f".o.csv.999999999{csvout.TMP_SUFFIX}"
    stale.write_text("")
    for i in range(400):
        shutil.copy(folder / "good.jpg", folder / f"copy{i:03d}.jpg")
    code = (f"import sys; from gui.launcher import main; sys.exit(main(['classify', {str(folder)!r}, '--csv', {str(out)!r}, "
            f"'--model', {str(model_file)!r}, '--batch-size', '1']))")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60

    def rows_written() -> bool:  # the header and at least one row: the stream is running
        return any(len(p.read_bytes().splitlines()) >= 2 for p in tmp_path.glob(f".o.csv.{proc.pid}*"))

    while not rows_written() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, 130), err
    assert not stale.exists()
    assert list(tmp_path.glob(f"*{csvout.TMP_SUFFIX}")) == []
    assert out.exists() and len(rows_of(out)) >= 1


def test_the_multitask_outputs_reach_the_csv(tmp_path, folder):
    model = make_contract_model(tmp_path / "mt.onnx", multitask=True)
    classifier = Classifier([load_model(model)])
    cols = csvout.columns(classifier)
    assert {"p_glioma", "p_meningioma", "p_pituitary"} <= set(cols)
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[:, :, 0] = 250  # bright red: a tumour, of the first type, with a hot heatmap
    r = classifier.classify_image(rgb)
    assert r.prediction == "tumor" and r.tumor_type == "glioma"
    assert r.heat.shape == (8, 8) and float(r.heat.max()) > 0.5
    dark = classifier.classify_image(np.zeros((64, 64, 3), np.uint8))
    assert dark.prediction == "no_tumor" and dark.tumor_type == "" and dark.tumor_type_confidence is None
    row = csvout.row(classifier, dark)
    assert row["tumor_type"] == "" and row["p_glioma"] != ""


def test_a_huge_sparse_file_is_refused_from_its_size(tmp_path):
    path = tmp_path / "sparse.jpg"
    with path.open("wb") as fh:
        fh.write(b"\xff\xd8\xff\xe0" + bytes(12))
        fh.truncate(5 * 1024 ** 3)  # 5 GB on paper, a few bytes on disk
    with pytest.raises(ImageReadError, match="limit"):
        read_image(path)
