"""The headless ``listen`` command: a DICOM node (pynetdicom, the optional ``dicom`` extra) that answers
C-ECHO, accepts C-STORE of MR and CT images, writes each instance under its SOP Instance UID (never
overwriting), and classifies each series once no instance of it has arrived for a while. No Qt.

Each instance is on disk when its C-STORE is answered, so an association aborted half-way loses
nothing received. Rows and logs carry file names (UIDs) and answers, never a patient field."""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import sys
import threading
from pathlib import Path

from gui.core.commands.common import add_precision_argument, note
from gui.core.commands.arrivals import Arrivals
from gui.core.commands.watch import serve
from gui.core.engine.classifier import Classifier
from gui.core.engine.model import ModelContractError
from gui.core.engine.modelset import load_models
from gui.core.records import csvout
from gui.core.records.journal import models_identity
from gui.core.records.livecsv import LiveCsv, NotOursError
from gui.core.records.logs import attach_log_file, log

#: A SOP Instance UID is digits and dots (PS3.5 9.1): anything else is refused, never used as a file name.
_UID = re.compile(r"[0-9][0-9.]{0,63}")
SUCCESS, CANNOT_UNDERSTAND, OUT_OF_RESOURCES = 0x0000, 0xC000, 0xA700


def storage_contexts() -> list:
    """pynetdicom's storage SOP classes of MR and CT images (plain, enhanced, legacy converted)."""
    from pynetdicom import StoragePresentationContexts

    return [cx for cx in StoragePresentationContexts
            if re.search(r"\b(MR|CT)\b.*Image Storage", getattr(cx.abstract_syntax, "name", ""))]


class Store:
    """The folder received instances go to: private to this user (the folder 0700, each file 0600: they
    hold patient data), and never fuller than ``limit_bytes`` (None: no limit) of instances."""

    def __init__(self, folder: Path, limit_bytes: int | None = None) -> None:
        self.folder, self.limit = folder, limit_bytes
        self.used = sum(p.stat().st_size for p in folder.glob("*.dcm")) if folder.is_dir() else 0
        self._lock = threading.Lock()

    def make_private(self) -> bool:
        """Create the folder 0700, or narrow an existing one to 0700; True when it was wider before."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        wider = (self.folder.stat().st_mode & 0o077) != 0
        os.chmod(self.folder, 0o700)
        return wider

    def has_room(self) -> bool:
        with self._lock:
            return self.limit is None or self.used < self.limit

    def count(self, size: int) -> None:
        with self._lock:
            self.used += size


def store_instance(event, store: Store) -> int:
    """C-STORE: write the instance as ``<SOPInstanceUID>.dcm`` (mode 0600) through a temporary file and a
    link (an existing file is never replaced: a second copy of an instance is acknowledged and dropped);
    a full store (``--max-store-gb``) answers "out of resources" and keeps nothing."""
    uid = str(event.request.AffectedSOPInstanceUID or "")
    if not _UID.fullmatch(uid):
        return CANNOT_UNDERSTAND
    folder = store.folder
    target = folder / f"{uid}.dcm"
    if target.exists():
        return SUCCESS
    if not store.has_room():
        log.error("store %s is full (--max-store-gb): instance %s refused", folder, uid)
        return OUT_OF_RESOURCES
    tmp = folder / f".{uid}.{os.getpid()}.part"
    try:
        ds = event.dataset
        ds.file_meta = event.file_meta
        with os.fdopen(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600), "wb") as fh:
            ds.save_as(fh, enforce_file_format=True)
        try:
            os.link(tmp, target)
            store.count(target.stat().st_size)
        except FileExistsError:
            pass
    except OSError as exc:
        log.error("cannot store instance %s: %s", uid, exc.strerror or exc)
        return OUT_OF_RESOURCES
    except Exception as exc:  # a dataset pynetdicom could not decode: refused, the node goes on
        log.error("cannot store instance %s: %s", uid, type(exc).__name__)
        return CANNOT_UNDERSTAND
    finally:
        tmp.unlink(missing_ok=True)
    log.info("stored instance %s", uid)
    return SUCCESS


def _check_access(args) -> str:
    """Why these settings are refused, or "": a node on the network must name whom it accepts; titles
    are 1-16 characters (PS3.5); a store limit is a positive number."""
    if args.allow_ae is None and not _is_loopback(args.bind):
        return (f"--bind {args.bind} accepts associations from the network: name the calling AE titles to accept "
                "with --allow-ae TITLE (repeatable)")
    bad = [t for t in args.allow_ae or [] if not 0 < len(t.strip()) <= 16]
    if bad:
        return f"--allow-ae {bad[0]!r}: an AE title has 1 to 16 characters"
    if args.max_store_gb is not None and not args.max_store_gb > 0:
        return "--max-store-gb must be a positive number of gigabytes"
    return ""


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mri-classifier listen",
                                description="A DICOM node: receives MR/CT images by C-STORE, classifies each "
                                            "series once complete, appends rows to the CSV. Stop with Ctrl-C.")
    p.add_argument("--port", type=int, default=11112)
    p.add_argument("--ae-title", default="MRICLASSIFIER")
    p.add_argument("--bind", default="127.0.0.1",
                   help="address to listen on (default this computer only; 0.0.0.0 to accept from the network, "
                        "which needs --allow-ae)")
    p.add_argument("--allow-ae", action="append", metavar="TITLE",
                   help="a calling AE title to accept (repeatable); without it any title is accepted, and only "
                        "on a loopback --bind")
    p.add_argument("--max-store-gb", type=float, metavar="GB",
                   help="stop accepting instances once the store holds this many gigabytes (default: no limit)")
    p.add_argument("--store", required=True, help="folder for the received instances")
    p.add_argument("--csv", required=True, help="the CSV to append rows to (kept across restarts)")
    p.add_argument("--series-quiet", type=float, default=5.0,
                   help="seconds with no new instance of a series before it is classified (default 5)")
    p.add_argument("--model", action="append", metavar="FILE", help="ONNX model instead of the bundled ones")
    add_precision_argument(p)
    p.add_argument("--force", action="store_true",
                   help="start the CSV again when it was not written by listen with these models")
    return p


def listen_main(argv: list[str]) -> int:
    """Exit 0 when stopped, 2 on bad arguments, an unusable model, a busy port or no pynetdicom."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    try:
        from pynetdicom import AE, evt
        from pynetdicom.sop_class import Verification
    except ImportError:
        print("error: the DICOM node needs pynetdicom: pip install 'mri-classifier[dicom]'", file=sys.stderr)
        return 2
    problem = _check_access(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    out = Path(args.csv)
    store = Store(Path(args.store), None if args.max_store_gb is None else int(args.max_store_gb * 1e9))
    try:
        if store.make_private():
            print(f"note: {store.folder} was readable by other users; it is now private to you (0700)", file=sys.stderr)
        classifier = Classifier(load_models(args.model, precision=args.precision, report=note))
        live = LiveCsv(out, csvout.columns(classifier), models_identity(classifier.models), args.force)
    except NotOursError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ModelContractError as exc:
        print(f"error: cannot use model {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}", file=sys.stderr)
        return 2
    attach_log_file()
    ae = AE(ae_title=args.ae_title)
    if args.allow_ae:
        ae.require_calling_aet = args.allow_ae
    ae.add_supported_context(Verification)
    for cx in storage_contexts():
        ae.add_supported_context(cx.abstract_syntax, cx.transfer_syntax)
    handlers = [(evt.EVT_C_ECHO, lambda _event: SUCCESS), (evt.EVT_C_STORE, lambda event: store_instance(event, store))]
    try:
        server = ae.start_server((args.bind, args.port), block=False, evt_handlers=handlers)
    except OSError as exc:
        live.close()
        print(f"error: cannot listen on {args.bind}:{args.port} ({exc.strerror or exc})", file=sys.stderr)
        return 2
    print(f"listening as {args.ae_title} on {args.bind}:{args.port}, storing into {store}; Ctrl-C stops", file=sys.stderr)
    log.info("DICOM node %s on %s:%d", args.ae_title, args.bind, args.port)
    try:
        return serve(store.folder, out, live, classifier, Arrivals(settle=0.2, quiet=args.series_quiet), 0.5)
    finally:
        server.shutdown()
