"""NIfTI-1/2 volumes (plain or gzipped) through nibabel: the first 3-D volume, sliced along its third array axis."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np

from gui.core.readers.limits import MAX_INFLATED_BYTES, check_dimensions
from gui.core.readers.orientation import RAS_PLAN, display_plan
from gui.core.readers.scan import ImageReadError, Plane, Scan
from gui.core.readers.sniff import HEAD_BYTES, is_nifti_header
from gui.core.viewstate import RADIOLOGICAL


def _stream(path: Path):
    """The file's bytes as a stream, inflated on the fly (and only as far as read) when gzipped."""
    with path.open("rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else path.open("rb")


def nifti_slices(path: Path) -> int:
    """Slices of the first volume (the third dimension, 1 for a 2-D image), from the header alone."""
    import nibabel as nib

    with _stream(path) as fh:
        head = fh.read(HEAD_BYTES)
    cls = nib.Nifti2Image if head[4:8] == b"n+2\x00" else nib.Nifti1Image
    shape = tuple(cls.header_class.from_fileobj(io.BytesIO(head), check=False).get_data_shape())
    return int((shape + (1,))[2]) if len(shape) >= 2 else 0


def open_nifti(path: Path) -> Scan:
    """A NIfTI-1/2 file: the first 3-D volume, slice ``k`` = the array's ``[:, :, k]`` (the number the
    window and the CSV show), displayed in the radiological convention from the affine.

    Only the header and the first volume are read: a plain ``.nii`` streams slice by slice from
    disk (a 1,000-slice volume never sits in memory whole); a ``.nii.gz`` inflates its first volume
    once, bounded by ``MAX_INFLATED_BYTES``, so a 4-D series or a gzip bomb costs no more than the
    volume scored. Values are nibabel's, with the header's scaling (scl_slope, scl_inter) applied.
    """
    import nibabel as nib
    from nibabel.fileholders import FileHolder

    with _stream(path) as fh:
        head = fh.read(HEAD_BYTES)
        compressed = isinstance(fh, gzip.GzipFile)
        if len(head) < 348 or not is_nifti_header(head):
            raise ImageReadError(path, "gzip file does not contain a NIfTI image")
        if head[344:348] == b"ni1\x00" or head[4:8] == b"ni2\x00":
            raise ImageReadError(path, "NIfTI header/image pair (.hdr/.img) is not supported; use a single .nii file")
        cls = nib.Nifti2Image if head[4:8] == b"n+2\x00" else nib.Nifti1Image
        header = cls.header_class.from_fileobj(io.BytesIO(head), check=False)
        shape = tuple(int(d) for d in header.get_data_shape())
        if len(shape) < 2:
            raise ImageReadError(path, f"NIfTI image has {len(shape)} dimension(s); at least 2 are needed")
        first = (shape + (1,))[:3]
        described = "x".join(str(d) for d in shape) + " voxels"
        check_dimensions(path, first[0] * first[1], first[0] * first[1] * first[2], described)
        needed = int(header.get_data_offset()) + first[0] * first[1] * first[2] * header.get_data_dtype().itemsize
        if needed > MAX_INFLATED_BYTES:
            raise ImageReadError(path, f"the first volume takes {needed / 1e6:.0f} MB, above the "
                                       f"{MAX_INFLATED_BYTES / 1e6:.0f} MB limit")
        # nibabel picks a decompressor by file name: a plain file named .gz is read from memory instead.
        streamed = not compressed and not path.name.lower().endswith((".gz", ".bz2", ".zst"))
        raw = b"" if streamed else head + fh.read(max(needed - len(head), 0))
    size = path.stat().st_size if streamed else len(raw)
    if size < needed:
        raise ImageReadError(path, f"the NIfTI data is truncated ({size:,} of {needed:,} bytes)")
    extra = (0,) * max(len(shape) - 3, 0)  # first volume of a 4-D (or longer) file
    if streamed:  # slices are read from the file when asked for (nibabel's lazy array proxy)
        holder = {"header": FileHolder(filename=str(path)), "image": FileHolder(filename=str(path))}
        img = cls.from_file_map(holder, mmap=False)
        volume = img.dataobj
    else:
        img = cls.from_stream(io.BytesIO(raw))
        volume = np.asarray(img.dataobj[(slice(None),) * min(len(shape), 3) + extra])
        del raw

    def stored(k: int) -> np.ndarray:
        if len(shape) == 2 or not streamed:
            return np.asarray(volume if len(shape) == 2 else volume[:, :, k])
        return np.asarray(volume[(slice(None), slice(None), k) + extra])

    n = first[2]
    plan = display_plan(img.affine)
    info = {"format": "NIfTI", "size": described, "slices": str(n),
            "orientation": plan.describe() if plan is not None else "unknown (shown as stored)"}
    notes = []
    volumes = int(np.prod(shape[3:])) if len(shape) > 3 else 1
    if volumes > 1:
        info["size"] += f"; volume 1 of {volumes} shown"
        notes.append(f"{len(shape)}-D file ({described}): only volume 1 of {volumes} is shown and scored")

    def read(k: int) -> Plane:
        return Plane(values=np.ascontiguousarray((plan or RAS_PLAN).apply(stored(k).astype(np.float32))))

    return Scan(path, "NIfTI", n, n // 2, read, info, notes=notes,
                edges=RADIOLOGICAL[plan.plane] if plan is not None else None,
                positions=slice_positions(img.affine, first) if plan is not None else None)


def slice_positions(affine: np.ndarray, shape: tuple[int, int, int]) -> list[float]:
    """Each slice's centre in mm along the slice axis's nearest world axis (RAS+), from the affine."""
    affine = np.asarray(affine, np.float64)
    axis = int(np.argmax(np.abs(affine[:3, 2])))
    centre = np.array([(shape[0] - 1) / 2.0, (shape[1] - 1) / 2.0, 0.0])
    return [float(affine[axis, :3] @ (centre + [0, 0, k]) + affine[axis, 3]) for k in range(shape[2])]
