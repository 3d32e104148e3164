"""The batch engine's layouts on the cores: same answers in every layout, measured once, kept, re-measured on change."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("onnx")

from gui.core.engine import layout, stream, tuning  # noqa: E402
from gui.core.engine.classifier import Classifier  # noqa: E402
from gui.core.records import csvout  # noqa: E402
from gui.core.engine.model import load_model  # noqa: E402
from gui.core.engine.tuning import EngineSettings  # noqa: E402
from tests.onnx_factory import make_contract_model  # noqa: E402
from tests.conftest import brain_like  # noqa: E402
from tests.series_factory import write_nifti  # noqa: E402


@pytest.fixture
def classifier(tmp_path):
    return Classifier([load_model(make_contract_model(tmp_path / "det.onnx", "binary"))])


@pytest.fixture
def settings_home(tmp_path, monkeypatch):
    """A fresh per-user folder, and short timing runs."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(tuning, "_TIMING_IMAGES", 6)
    return tmp_path / "home"


def test_every_layout_gives_the_same_rows_in_the_same_order(classifier, tmp_path):
    rng = np.random.default_rng(0)
    items = []
    for i in range(23):
        path = tmp_path / f"s{i:02d}.{'png' if i % 2 else 'jpg'}"
        Image.fromarray((rng.random((int(rng.integers(40, 300)), 90)) * (40 + 9 * i)).astype(np.uint8)).save(path)
        items.append(path)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 damaged")
    items.insert(5, tmp_path / "broken.jpg")
    items.insert(9, write_nifti(tmp_path / "study.nii", (rng.random((7, 32, 32)) * 200).astype(np.uint8)))
    rows = {}
    for engine in [EngineSettings(batch=16), EngineSettings(batch=3, decode_threads=2, inference_workers=2, inference_threads=1),
                   EngineSettings(batch=1, inference_workers=3, inference_threads=1),
                   EngineSettings(batch=4, decode_threads=0, inference_workers=2, inference_threads=1)]:
        rows[engine] = [csvout.row(classifier, r) for r in stream.classify_files(items, classifier, engine)]
    first, *others = rows.values()
    assert [Path(r["path"]).name for r in first] == [p.name for p in items]
    assert first[5]["status"] == "error" and first[9]["n_slices"] == "7"
    numbers = ("tumor_probability", "confidence", "p_tumor", "p_no_tumor")
    for other in others:
        for a, b in zip(first, other, strict=True):
            assert {k: v for k, v in a.items() if k not in numbers} == {k: v for k, v in b.items() if k not in numbers}
            # The same session and inputs; a batch of one may take another matrix kernel (last printed digit).
            assert all(float(a[k] or 0) == pytest.approx(float(b[k] or 0), abs=2e-6) for k in numbers)


def test_a_layout_without_decode_threads_decodes_in_the_inference_workers(classifier, tmp_path, monkeypatch):
    """``decode_threads`` 0: each image is read by the worker that runs its batch (no third thread on the
    cores); a file that cannot be read is still its own error row and the batch goes on."""
    import threading

    for i in range(6):
        brain_like(tmp_path / f"s{i}.png", i % 2 == 0)
    (tmp_path / "s3.png").write_bytes(b"not a png")
    readers = []
    real = stream.decode_file
    monkeypatch.setattr(stream, "decode_file", lambda *a: readers.append(threading.current_thread().name) or real(*a))
    engine = EngineSettings(batch=2, decode_threads=0, inference_workers=2, inference_threads=1)
    rows = list(stream.classify_files(sorted(tmp_path.glob("*.png")), classifier, engine))
    assert [r.status for r in rows] == ["ok", "ok", "ok", "error", "ok", "ok"]
    assert len(readers) == 6 and all(name.startswith(stream.INFERENCE_THREADS) for name in readers)
    assert "each decoded by its own worker" in engine.describe()


def test_layouts_fit_the_cores_and_the_memory_bound():
    assert tuning.layouts(1) == [EngineSettings(16, 1, 1, 1)]
    assert tuning.rule(1) == EngineSettings(16, 1, 1, 1)
    assert tuning.rule(2) == EngineSettings(8, 0, 2, 1)  # two single-threaded batches at once, each decoding its own
    for cores in (2, 3, 4, 8, 16, 64):
        found = tuning.layouts(cores)
        assert EngineSettings(16, 1, 1, cores) in found  # one batch over every core is always a candidate
        for s in found:
            assert s.batch * s.inference_workers <= 16  # images in flight: the memory bound
            assert s.inference_workers * s.inference_threads <= cores
    assert {s.decode_threads for s in tuning.layouts(8)} == {0, 1, 2}  # 0: each worker decodes its own batch


def test_a_first_long_batch_measures_once_and_keeps_the_layout(classifier, settings_home, monkeypatch):
    assert tuning.engine_settings(classifier, n_items=10) == tuning.rule()  # short: no measuring
    assert not (settings_home / "MRI Tumor Classifier" / "mri-classifier" / tuning.SETTINGS_FILE).exists()
    said = []
    chosen = tuning.engine_settings(classifier, n_items=tuning.MEASURE_FROM, report=said.append)
    assert chosen in tuning.layouts() and said and "once" in said[0]
    kept = json.loads((settings_home / "MRI Tumor Classifier" / "mri-classifier" / tuning.SETTINGS_FILE).read_text())
    [(key, entry)] = kept.items()
    assert key == tuning.machine_key(classifier) and "cores" in key and "det.onnx" in key
    assert set(entry["images_per_second"]) == {s.describe() for s in tuning.layouts()}
    assert all(rate > 0 for rate in entry["images_per_second"].values())

    def no_second_measurement(*_a, **_k):
        raise AssertionError("measured twice")

    monkeypatch.setattr(tuning, "measure", no_second_measurement)
    assert tuning.engine_settings(classifier, n_items=10_000) == chosen
    assert tuning.engine_settings(classifier, n_items=1) == chosen  # the kept layout serves short batches too


def test_one_core_has_nothing_to_time(classifier, settings_home, monkeypatch):
    monkeypatch.setattr(tuning, "cpu_count", lambda: 1)
    monkeypatch.setattr(layout, "cpu_count", lambda: 1)
    said = []
    assert tuning.measure(classifier, said.append) == (EngineSettings(16, 1, 1, 1), {}) and said == []


def test_another_model_or_a_damaged_file_is_measured_again(classifier, settings_home, tmp_path):
    tuning.keep(classifier, EngineSettings(16, 1, 1, 1), {"x": 1.0})
    assert tuning.kept(classifier) == EngineSettings(16, 1, 1, 1)
    other = Classifier([load_model(make_contract_model(tmp_path / "type.onnx", "tumor-type"))])
    assert tuning.kept(other) is None
    path = settings_home / "MRI Tumor Classifier" / "mri-classifier" / tuning.SETTINGS_FILE
    data = json.loads(path.read_text())
    for field, nonsense in (("batch", 0), ("inference_threads", "2"), ("decode_threads", True), ("decode_threads", -1),
                            ("colour", 1)):
        edited = json.loads(json.dumps(data))
        edited[tuning.machine_key(classifier)]["settings"][field] = nonsense  # a hand edit
        path.write_text(json.dumps(edited))
        assert tuning.kept(classifier) is None, field
    path.write_text("{not json")
    assert tuning.kept(classifier) is None and tuning.engine_settings(classifier, 3) == tuning.rule()


def test_tune_command_prints_the_rates_and_keeps_the_fastest(settings_home, tmp_path, capsys):
    model = make_contract_model(tmp_path / "det.onnx", "binary")
    from gui.core.commands.tune import tune_main

    assert tune_main(["--model", str(model)]) == 0
    out = capsys.readouterr().out
    assert out.count("images/s") == len(tuning.layouts()) and out.count("<- kept") == 1
    assert tuning.kept(Classifier([load_model(model)])) is not None


def test_classify_loads_its_model_on_the_kept_layouts_threads(settings_home, tmp_path, monkeypatch):
    """One session per model in a headless run: the kept layout's thread count, not every core plus another."""
    from gui.core.commands import classify as cli
    from gui.core.engine import modelset

    model = make_contract_model(tmp_path / "det.onnx", "binary")
    tuning.keep([model], EngineSettings(8, 1, 2, 1), {})
    threads = []
    real = modelset.load_model
    monkeypatch.setattr(modelset, "load_model", lambda path, t=None: threads.append(t) or real(path, t))
    Image.new("L", (64, 64), 90).save(tmp_path / "a.png")
    assert cli.classify_main([str(tmp_path / "a.png"), "--model", str(model), "--csv", str(tmp_path / "o.csv")]) == 0
    assert threads == [1]


def test_layouts_kept_at_once_by_several_processes_are_all_kept(settings_home, tmp_path):
    """Shards starting together each keep their layout: the read-modify-write of the kept file is
    locked and written under a name of its own, so no process erases another's entry (the old
    writer shared one ``engine.tmp`` and read without a lock)."""
    import threading

    files = []
    for k in range(4):
        f = tmp_path / f"m{k}.onnx"
        f.write_bytes(b"x" * (k + 1))  # a layout is kept per model file (name and size)
        files.append([f])
    start = threading.Barrier(len(files))

    def keep_many(models):
        start.wait()
        for i in range(25):
            tuning.keep(models, EngineSettings(16, 1, 1, 1 + i % 2), {})

    workers = [threading.Thread(target=keep_many, args=(m,)) for m in files]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert all(tuning.kept(m) is not None for m in files)
    folder = settings_home / "MRI Tumor Classifier" / "mri-classifier"
    assert not [p.name for p in folder.iterdir() if p.suffix == ".tmp"]
