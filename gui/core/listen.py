"""The headless ``listen`` command: a DICOM node (pynetdicom, the optional ``dicom`` extra) that answers
C-ECHO, accepts C-STORE of MR and CT images, writes each instance under its SOP Instance UID (never
overwriting), and classifies each series once no instance of it has arrived for a while. No Qt.

Each instance is on disk when its C-STORE is answered, so an association aborted half-way loses
nothing received. Rows and logs carry file names (UIDs) and answers, never a patient field."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from gui.core.arrivals import Arrivals
from gui.core.classifier import Classifier
from gui.core.cli import load_models
from gui.core.logs import attach_log_file, log
from gui.core.model import ModelContractError
from gui.core.watch import LiveCsv, serve

#: A SOP Instance UID is digits and dots (PS3.5 9.1): anything else is refused, never used as a file name.
_UID = re.compile(r"[0-9][0-9.]{0,63}")
SUCCESS, CANNOT_UNDERSTAND, OUT_OF_RESOURCES = 0x0000, 0xC000, 0xA700


def storage_contexts() -> list:
    """pynetdicom's storage SOP classes of MR and CT images (plain, enhanced, legacy converted)."""
    from pynetdicom import StoragePresentationContexts

    return [cx for cx in StoragePresentationContexts
            if re.search(r"\b(MR|CT)\b.*Image Storage", getattr(cx.abstract_syntax, "name", ""))]


def store_instance(event, folder: Path) -> int:
    """C-STORE: write the instance as ``<SOPInstanceUID>.dcm`` through a temporary file and a link (an
    existing file is never replaced: a second copy of an instance is acknowledged and dropped)."""
    uid = str(event.request.AffectedSOPInstanceUID or "")
    if not _UID.fullmatch(uid):
        return CANNOT_UNDERSTAND
    target = folder / f"{uid}.dcm"
    if target.exists():
        return SUCCESS
    tmp = folder / f".{uid}.{os.getpid()}.part"
    try:
        ds = event.dataset
        ds.file_meta = event.file_meta
        ds.save_as(tmp, enforce_file_format=True)
        try:
            os.link(tmp, target)
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mri-classifier listen",
                                description="A DICOM node: receives MR/CT images by C-STORE, classifies each "
                                            "series once complete, appends rows to the CSV. Stop with Ctrl-C.")
    p.add_argument("--port", type=int, default=11112)
    p.add_argument("--ae-title", default="MRICLASSIFIER")
    p.add_argument("--bind", default="127.0.0.1",
                   help="address to listen on (default this computer only; 0.0.0.0 to accept from the network)")
    p.add_argument("--store", required=True, help="folder for the received instances")
    p.add_argument("--csv", required=True, help="the CSV to append rows to (kept across restarts)")
    p.add_argument("--series-quiet", type=float, default=5.0,
                   help="seconds with no new instance of a series before it is classified (default 5)")
    p.add_argument("--model", action="append", metavar="FILE", help="ONNX model instead of the bundled ones")
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
    store, out = Path(args.store), Path(args.csv)
    try:
        store.mkdir(parents=True, exist_ok=True)
        classifier = Classifier(load_models(args.model))
        live = LiveCsv(out, classifier.columns())
    except ModelContractError as exc:
        print(f"error: cannot use model {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}", file=sys.stderr)
        return 2
    attach_log_file()
    ae = AE(ae_title=args.ae_title)
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
        return serve(store, out, live, classifier, Arrivals(settle=0.2, quiet=args.series_quiet), 0.5)
    finally:
        server.shutdown()
