"""One DICOM file (single- or multi-frame) through pydicom: stored values, the file's VOI, colour as stored."""

from __future__ import annotations

import warnings
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from gui.core.display import Window, window_to_uint8
from gui.core.readers.dicom_frames import frame_order, frame_orientation, frame_rescale
from gui.core.readers.limits import MAX_INFLATED_BYTES, check_dimensions
from gui.core.readers.orientation import iop_plan
from gui.core.readers.scan import ImageReadError, Plane, Scan
from gui.core.readers.sequence import dicom_sequence
from gui.core.viewstate import Edges


def read_dataset(path: Path, stop_before_pixels: bool = False, specific_tags: list | None = None):
    """pydicom's dataset of a file, with or without preamble and file meta; a raw dataset with no
    Transfer Syntax UID is given the one its encoding was read with (implicit or explicit VR)."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.uid import (
        ExplicitVRBigEndian,
        ExplicitVRLittleEndian,
        ImplicitVRLittleEndian,
    )

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            ds = pydicom.dcmread(path, force=True, stop_before_pixels=stop_before_pixels, specific_tags=specific_tags)
    except InvalidDicomError as exc:
        raise ImageReadError(path, f"not a valid DICOM file ({exc})") from exc
    if "TransferSyntaxUID" not in ds.file_meta and ds.original_encoding[0] is not None:
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit else
                                          ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    return ds


def open_dicom(path: Path, deflate_checked: bool = False) -> Scan:
    """A DICOM file: grey frames as stored values (modality LUT applied) with the file's VOI for the
    display; RGB, YBR (converted by pydicom) and PALETTE COLOR frames as colour pixels.
    ``deflate_checked``: the caller has already read this file's header and checked it is not a
    deflated file (a series' slices), so its file meta is not read a second time."""
    from pydicom.pixels import apply_color_lut, apply_modality_lut

    if not deflate_checked:
        check_deflated(path)
    ds = read_dataset(path)
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise ImageReadError(path, "DICOM file has no pixel data (it is not an image)")
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    n_frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    check_dimensions(path, rows * cols, rows * cols * n_frames, f"{cols}x{rows} pixels x {n_frames} frame(s)")
    tsyntax = ds.file_meta.get("TransferSyntaxUID")
    try:
        pixels = ds.pixel_array
    except Exception as exc:
        raise ImageReadError(path, decode_failure(tsyntax, exc, int(ds.get("BitsStored", 8) or 8))) from exc
    if n_frames == 1:
        pixels = pixels[None]
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2"))
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    info = {"format": "DICOM", "size": f"{pixels.shape[2]}x{pixels.shape[1]}", "frames": str(n_frames),
            "modality": str(getattr(ds, "Modality", "")), "photometric": photometric,
            "transfer syntax": getattr(tsyntax, "name", "") if tsyntax is not None else ""}
    window = file_window(ds)
    voi = file_voi(ds, window)
    # PS3.3 C.7.6.3.1.2 and C.11.6: MONOCHROME1, or a Presentation LUT Shape INVERSE, shows the lowest
    # value white (the two describe one inversion, never two).
    inverted = photometric == "MONOCHROME1" or str(ds.get("PresentationLUTShape", "") or "").upper() == "INVERSE"
    order, notes = frame_order(ds, n_frames)
    iop = frame_orientation(ds)
    plan = iop_plan(iop) if iop is not None else None

    def read(i: int) -> Plane:
        frame = pixels[order[i]]
        if samples == 3:
            plane = Plane(rgb=np.ascontiguousarray(frame) if frame.dtype == np.uint8 else window_to_uint8(frame))
        elif photometric == "PALETTE COLOR":
            plane = Plane(rgb=_palette_rgb(ds, apply_color_lut(frame, ds)))
        else:
            rescale = frame_rescale(ds, order[i])
            values = frame.astype(np.float64) * rescale[0] + rescale[1] if rescale is not None else \
                apply_modality_lut(frame, ds)
            plane = Plane(values=np.asarray(values, dtype=np.float32), voi=voi, inverted=inverted, voi_window=window)
        return plan.orient(plane) if plan is not None else plane

    edges = None
    if iop is not None:
        right, down = np.array(iop[:3], float), np.array(iop[3:], float)
        edges = Edges.from_directions(*(plan.screen_directions(right, down) if plan is not None else (right, down)))
    info["orientation"] = plan.describe() if plan is not None else "as stored"
    return Scan(path, "DICOM", n_frames, n_frames // 2, read, info, notes=notes, edges=edges,
                sequence=dicom_sequence(ds))


def _palette_rgb(ds, rgb: np.ndarray) -> np.ndarray:
    """A palette's output (8 or 16 bits per entry, from its descriptor) as 8-bit RGB."""
    desc = ds.get("RedPaletteColorLookupTableDescriptor")
    bits = int(desc[2]) if desc is not None and len(desc) > 2 and int(desc[2]) in (8, 16) else \
        (8 if rgb.dtype == np.uint8 else 16)
    return window_to_uint8(rgb, 0, 2 ** bits - 1) if bits > 8 or rgb.dtype != np.uint8 else np.ascontiguousarray(rgb)


def file_voi(ds, window: Window | None) -> Callable[[np.ndarray], np.ndarray] | None:
    """The file's VOI transform to 0..255, when it names one: its first VOI LUT (pydicom's
    ``apply_voi``, output range from the LUT's bit depth), else ``window``, its first window
    (:func:`file_window`) with its VOI LUT function (:func:`gui.core.display.voi_window`)."""
    from pydicom.pixels import apply_voi

    if ds.get("VOILUTSequence"):
        item = ds.VOILUTSequence[0]
        bits = int(item.LUTDescriptor[2]) if "LUTDescriptor" in item else 16
        top = float(2 ** bits - 1)

        def lut(values: np.ndarray) -> np.ndarray:
            out = np.asarray(apply_voi(np.rint(np.nan_to_num(values)).astype(np.int64), ds, index=0), np.float32)
            return window_to_uint8(out, 0.0, max(top, float(out.max(initial=0))))

        return lut
    return None if window is None else window.apply


def file_window(ds) -> Window | None:
    """The file's first VOI window (centre, width, VOI LUT function), when it has one and no VOI LUT."""
    if ds.get("VOILUTSequence"):
        return None
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if center is None or width is None or width <= 0:
        return None
    return Window(center, width, str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR"))


def _first(value) -> float | None:
    """The first of a DS value that may be multi-valued (several windows), or None."""
    from pydicom.multival import MultiValue

    if isinstance(value, (MultiValue, list, tuple)):
        value = value[0] if len(value) else None
    try:
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None


def decode_failure(tsyntax, exc: Exception, bits_stored: int = 8) -> str:
    """Why pixel data did not decode: a missing decoder (named, with what to install) or damaged data.

    Pillow, always installed, decodes only 8-bit JPEG: 12-bit JPEG Extended needs an optional
    decoder, and its failure is named as that, not as damage."""
    from pydicom.pixels import get_decoder

    name = getattr(tsyntax, "name", str(tsyntax))
    if tsyntax is None or not getattr(tsyntax, "is_compressed", False):
        return f"cannot decode the DICOM pixel data ({exc})"
    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError:
        return f"compressed DICOM ({name}): no decoder exists for this transfer syntax"
    if decoder.is_available and not (bits_stored > 8 and set(decoder.available_plugins) <= {"pillow"}
                                     and decoder.missing_dependencies and "JPEG" in name):
        return f"the compressed pixel data ({name}) is damaged or truncated ({exc})"
    if decoder.is_available:
        return (f"compressed DICOM ({name}, {bits_stored}-bit): the installed decoder (Pillow) reads only 8-bit "
                "JPEG; install one of " + "; ".join(decoder.missing_dependencies))
    return (f"compressed DICOM ({name}) and no decoder for it is installed: install one of "
            + "; ".join(decoder.missing_dependencies))


#: The Deflated Explicit VR Little Endian transfer syntax UID (pydicom's ``DeflatedExplicitVRLittleEndian``).
DEFLATED_UID = "1.2.840.10008.1.2.1.99"


def may_be_deflated(head: bytes) -> bool:
    """Whether a DICOM file whose first bytes are ``head`` may be deflated: its transfer syntax names
    deflate, or its file meta group does not end inside ``head`` (so the first bytes cannot tell). A
    folder scan reads headers of many files, and a deflated header inflates whole when read."""
    if DEFLATED_UID.encode() in head:
        return True
    if head[128:132] != b"DICM":
        return False  # no file meta: a raw dataset cannot be deflated
    if head[132:138] != b"\x02\x00\x00\x00UL":  # (0002,0000) group length, explicit VR, first
        return True
    meta_end = 132 + 12 + int.from_bytes(head[140:144], "little")
    return meta_end > len(head)


def read_header(path: Path, head: bytes, specific_tags: list | None = None):
    """A DICOM file's header without its pixels, the file's first bytes being ``head``: a deflated
    header inflates whole when read, so a file that may be deflated has its inflated size checked
    first (a bomb raises ImageReadError before pydicom inflates it). Folder scans read headers this way."""
    if may_be_deflated(head):
        check_deflated(path)
    return read_dataset(path, stop_before_pixels=True, specific_tags=specific_tags)


def check_deflated(path: Path) -> None:
    """A deflated DICOM inflates whole when read: count its inflated size first, in bounded chunks."""
    from pydicom.filereader import (
        _read_file_meta_info,
        read_file_meta_info,
        read_preamble,
    )
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    try:
        meta = read_file_meta_info(path)
    except Exception:
        return  # no readable file meta: not deflated (the full read reports real damage)
    if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
        return
    with path.open("rb") as fh:
        read_preamble(fh, True)
        _read_file_meta_info(fh)
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        total, data = 0, fh.read(1 << 20)
        while data and not inflater.eof:
            while data and not inflater.eof:
                total += len(inflater.decompress(data, 1 << 24))
                if total > MAX_INFLATED_BYTES:
                    raise ImageReadError(path, f"deflated DICOM expands to more than {MAX_INFLATED_BYTES / 1e6:.0f} MB")
                data = inflater.unconsumed_tail
            data = fh.read(1 << 20)
