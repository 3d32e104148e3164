"""The DICOM node over loopback: C-ECHO answered, a 30-slice series sent by pynetdicom's storescu
becomes one study row, an association aborted half-way keeps what arrived, no patient field in the
CSV or the log."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pynetdicom = pytest.importorskip("pynetdicom")

from tests.child_process import with_ctrl_c  # noqa: E402
from tests.onnx_factory import make_contract_model  # noqa: E402
from tests.series_factory import stack, write_dicom_series  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _wait(condition, seconds: float = 60) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
def test_a_node_receives_a_series_and_classifies_it_once(tmp_path, monkeypatch):
    from pynetdicom import AE
    from pynetdicom.sop_class import MRImageStorage, Verification

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    port, store, out = _free_port(), tmp_path / "store", tmp_path / "rows.csv"
    images, _ = stack(30, size=32)
    images = np.resize(images, (30,) + images.shape[1:])  # an lgg patient may have fewer slices: repeated
    write_dicom_series(tmp_path / "series", images)
    model = make_contract_model(tmp_path / "m.onnx")
    node = subprocess.Popen([sys.executable, "-m", "gui", "listen", "--port", str(port), "--store", str(store),
                             "--csv", str(out), "--series-quiet", "1.5", "--model", str(model),
                             "--allow-ae", "TESTSCU", "--allow-ae", "STORESCU"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}, preexec_fn=with_ctrl_c)
    try:
        ae = AE(ae_title="TESTSCU")
        ae.add_requested_context(Verification)
        assert _wait(lambda: _echo(ae, port), 30), "no answer to C-ECHO"
        intruder = AE(ae_title="INTRUDER")
        intruder.add_requested_context(Verification)
        assert not intruder.associate("127.0.0.1", port, ae_title="MRICLASSIFIER").is_established
        scu = subprocess.run([sys.executable, "-m", "pynetdicom", "storescu", "127.0.0.1", str(port),
                              str(tmp_path / "series"), "-r", "-aec", "MRICLASSIFIER"],
                             capture_output=True, text=True, timeout=120)
        assert scu.returncode == 0, scu.stderr[-2000:]
        assert _wait(lambda: any(r["n_slices"] == "30" for r in _rows(out)), 60), _rows(out)
        assert len(list(store.glob("*.dcm"))) == 30
        # an association aborted half-way: what arrived is kept
        other = write_dicom_series(tmp_path / "other", images[:8])
        ae2 = AE(ae_title="TESTSCU")
        ae2.add_requested_context(MRImageStorage, "1.2.840.10008.1.2.1")
        assoc = ae2.associate("127.0.0.1", port, ae_title="MRICLASSIFIER")
        assert assoc.is_established
        for f in other[:5]:
            assert assoc.send_c_store(pydicom_read(f)).Status == 0
        assoc.abort()
        assert len(list(store.glob("*.dcm"))) == 35
        assert _wait(lambda: any(r["n_slices"] == "5" for r in _rows(out)), 60)
        time.sleep(2)  # nothing is classified twice
        rows = _rows(out)
        assert sorted(r["n_slices"] for r in rows) == ["30", "5"]
    finally:
        node.send_signal(signal.SIGINT)
        node.wait(30)
    text = out.read_text() + "".join(p.read_text() for p in (tmp_path / "data").rglob("*.log"))
    assert "Doe" not in text and "SECRET-ID-42" not in text


def pydicom_read(path):
    import pydicom

    return pydicom.dcmread(path)


def _echo(ae, port: int) -> bool:
    assoc = ae.associate("127.0.0.1", port, ae_title="MRICLASSIFIER")
    if not assoc.is_established:
        return False
    status = assoc.send_c_echo()
    assoc.release()
    return bool(status) and status.Status == 0


class _Request:
    def __init__(self, uid: str) -> None:
        self.AffectedSOPInstanceUID = uid


class _Event:
    """What pynetdicom hands a C-STORE handler: the request, the dataset and its file meta."""

    def __init__(self, ds) -> None:
        self.request = _Request(str(ds.SOPInstanceUID))
        self.dataset, self.file_meta = ds, ds.file_meta


def _mr_small():
    import pydicom
    from pydicom.data import get_testdata_file

    return pydicom.dcmread(get_testdata_file("MR_small.dcm"))


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
def test_received_instances_are_private_to_the_user(tmp_path):
    from gui.core.commands.listen import SUCCESS, Store, store_instance

    folder = tmp_path / "store"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    store = Store(folder)
    assert store.make_private() is True  # it was readable by others: narrowed
    old = os.umask(0o022)
    try:
        assert store_instance(_Event(_mr_small()), store) == SUCCESS
    finally:
        os.umask(old)
    (written,) = folder.glob("*.dcm")
    assert folder.stat().st_mode & 0o777 == 0o700 and written.stat().st_mode & 0o777 == 0o600
    assert store.make_private() is False


def test_a_full_store_refuses_instances_and_keeps_nothing(tmp_path):
    from gui.core.commands.listen import OUT_OF_RESOURCES, SUCCESS, Store, store_instance

    store = Store(tmp_path, limit_bytes=1)
    store.make_private()
    first, second = _mr_small(), _mr_small()
    second.SOPInstanceUID = first.SOPInstanceUID + ".2"
    assert store_instance(_Event(first), store) == SUCCESS  # under the limit when it arrived
    assert store_instance(_Event(second), store) == OUT_OF_RESOURCES
    assert [p.name for p in tmp_path.iterdir()] == [f"{first.SOPInstanceUID}.dcm"]
    assert Store(tmp_path, limit_bytes=10**9).used == (tmp_path / f"{first.SOPInstanceUID}.dcm").stat().st_size


def test_a_node_on_the_network_must_name_whom_it_accepts(tmp_path, capsys):
    from gui.core.commands.listen import listen_main

    common = ["--store", str(tmp_path / "s"), "--csv", str(tmp_path / "r.csv"), "--port", "0"]
    assert listen_main(["--bind", "0.0.0.0", *common]) == 2
    assert "--allow-ae" in capsys.readouterr().err and not (tmp_path / "s").exists()
    assert listen_main(["--allow-ae", "X" * 17, *common]) == 2
    assert listen_main(["--max-store-gb", "0", *common]) == 2
    assert not (tmp_path / "r.csv").exists()
