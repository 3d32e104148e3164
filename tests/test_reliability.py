"""No bad file, bad model or interruption crashes the app, loses a result or touches a scan."""

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
from gui.core.engine.classifier import Classifier
from gui.core.engine.model import ModelContractError, load_model  # noqa: E402
from gui.core.readers import ImageReadError, read_image
from gui.core.engine.tuning import EngineSettings
from tests.hostile_factory import block_network, digest_tree, hostile_corpus, png_bytes  # noqa: E402
from tests.onnx_factory import make_contract_model  # noqa: E402


@pytest.fixture
def classifier(tmp_path):
    return Classifier([load_model(make_contract_model(tmp_path / "d.onnx")),
                              load_model(make_contract_model(tmp_path / "t.onnx", "tumor-type"))])


def test_hostile_corpus_gives_a_row_each_and_the_batch_goes_on(tmp_path, classifier):
    corpus = tmp_path / "corpus"
    expect = hostile_corpus(corpus)
    os.symlink(corpus, corpus / "loop")  # a symlink loop inside the batch folder
    files = sorted(corpus.iterdir())
    results = {Path(r.path).name: r for r in stream.classify_files(files, classifier, engine=EngineSettings(batch=4))}
    assert set(expect) <= set(results)
    for name, status in expect.items():
        r = results[name]
        assert r.status == status, (name, r.error)
        if status == "error":
            assert r.error and "Traceback" not in r.error
    assert "no decoder" in results["jpegls.dcm"].error
    assert "pixel" in results["no_pixels.dcm"].error and "limit" in results["bomb.png"].error
    out = tmp_path / "results.csv"
    csvout.write_csv_atomic(out, csvout.columns(classifier), [csvout.row(classifier, r) for r in results.values()])
    text = out.read_text(encoding="utf-8")
    assert "Müller" not in text and "SECRET-ID" not in text  # no patient identifiers in the CSV


def test_unreadable_file_permission(tmp_path, monkeypatch):
    path = tmp_path / "locked.png"
    path.write_bytes(png_bytes(Image.new("L", (4, 4))))
    real_open = Path.open

    def deny(self, *a, **k):
        if self == path:
            raise PermissionError(13, "Permission denied")
        return real_open(self, *a, **k)

    monkeypatch.setattr(Path, "open", deny)
    with pytest.raises(ImageReadError, match="permission denied"):
        read_image(path)


def test_ten_thousand_tiny_files(tmp_path, classifier):
    folder = tmp_path / "tiny"
    folder.mkdir()
    data = png_bytes(Image.new("L", (2, 2), 10))
    for i in range(10_000):
        (folder / f"f{i:05d}.png").write_bytes(data)
    (folder / "f05000.png").write_bytes(b"broken")
    n = failed = 0
    for r in stream.classify_files(stream.collect_files([folder]), classifier, engine=EngineSettings(batch=64)):
        n += 1
        failed += not r.ok
    assert (n, failed) == (10_000, 1)


def test_model_faults_are_refused_with_a_reason(tmp_path):
    good = make_contract_model(tmp_path / "good.onnx")
    cases = {
        tmp_path / "missing.onnx": "not found",
        tmp_path / "truncated.onnx": "not a valid ONNX model",
        tmp_path / "text.onnx": "not a valid ONNX model",
        make_contract_model(tmp_path / "grey.onnx", channels=1): "must be float32 [N, H, W, 3]",
        make_contract_model(tmp_path / "nocard.onnx", card={}): "no model card",
    }
    (tmp_path / "truncated.onnx").write_bytes(good.read_bytes()[:100])
    (tmp_path / "text.onnx").write_text("hello")
    for path, reason in cases.items():
        with pytest.raises(ModelContractError) as info:
            load_model(path)
        assert reason in info.value.reason and path.name in str(info.value)


def test_fuzzed_bytes_only_raise_the_readers_error(tmp_path):
    """Mutated bytes of real JPEG, PNG, DICOM and NIfTI files: a result or an ImageReadError, nothing else."""
    pytest.importorskip("hypothesis")
    import nibabel
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from pydicom.data import get_testdata_file

    rgb = Image.fromarray((np.random.default_rng(3).random((48, 40, 3)) * 255).astype(np.uint8))
    seeds = [png_bytes(rgb, "JPEG"), png_bytes(rgb), Path(get_testdata_file("MR_small.dcm")).read_bytes(),
             (Path(nibabel.__file__).parent / "tests" / "data" / "anatomical.nii").read_bytes()]
    target = tmp_path / "fuzz.bin"

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck),
              derandomize=True, database=None)
    @given(seed=st.sampled_from(seeds), cuts=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
           truncate=st.one_of(st.none(), st.integers(0, 10**6)))
    def fuzz(seed, cuts, truncate):
        data = bytearray(seed)
        for pos, value in cuts:
            data[pos % len(data)] = value
        if truncate is not None:
            data = data[: truncate % (len(data) + 1)]
        target.write_bytes(bytes(data))
        try:
            out = read_image(target)
            assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
        except ImageReadError:
            pass

    fuzz()


def test_headless_batch_leaves_inputs_byte_identical_and_works_offline(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus"
    hostile_corpus(corpus)
    before = digest_tree(corpus)

    attempts = block_network(monkeypatch)
    det = make_contract_model(tmp_path / "d.onnx")
    out = tmp_path / "out" / "r.csv"
    out.parent.mkdir()
    code = cli.classify_main([str(corpus), "--csv", str(out), "--model", str(det), "--heatmaps", str(tmp_path / "hm")])
    assert code == 1
    assert digest_tree(corpus) == before
    assert sorted(p.name for p in corpus.iterdir()) == sorted([*before, "scan.png"])  # nothing written next to scans
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert {r["status"] for r in rows} == {"ok", "error"}
    assert attempts == []
