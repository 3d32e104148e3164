"""Single-frame DICOM files of one series gathered into one study, in slice order, gaps named."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gui.core.readers.dicom import DEFLATED_UID, open_dicom, read_header
from gui.core.readers.levels import Levels
from gui.core.readers.orientation import DisplayPlan, iop_plan
from gui.core.readers.scan import ImageReadError, Plane, Scan
from gui.core.readers.sequence import dicom_sequence
from gui.core.readers.sniff import is_image_file, read_head, sniff_format
from gui.core.viewstate import Edges


@dataclass(frozen=True)
class DicomSeries:
    """Single-frame DICOM files of one series (one SeriesInstanceUID) found in one folder, in slice
    order: by position along the slice normal (nibabel's ``slice_indicator``, from
    ImagePositionPatient and ImageOrientationPatient), else by InstanceNumber, else by file name.
    Only technical header fields are kept; patient fields are never read into it."""

    files: tuple[Path, ...]
    sizes: tuple[tuple[int, int], ...]
    positions: tuple[float, ...] | None  # mm along the DICOM slice normal (row x column), when every file has one
    instance_numbers: tuple[int, ...] | None
    plan: DisplayPlan | None
    modality: str = ""
    series_number: str = ""
    description: str = ""  # SeriesDescription ("AX FLAIR"), a protocol name, never a patient field
    notes: tuple[str, ...] = ()  # how the files were grouped, when a result must say it
    #: Per file, whether it is deflated (read when grouping): the others are read once more, for pixels only.
    deflated: tuple[bool, ...] = ()
    #: The stack's ImageOrientationPatient (row and column cosines), when its files give one.
    orientation: tuple[float, ...] | None = None
    #: The MR sequence the series' tags name (:mod:`gui.core.readers.sequence`), "" when they name none.
    sequence: str = ""

    @property
    def path(self) -> Path:
        """The file of slice 0: the name a folder scan's row carries for the series."""
        return self.files[0]

    @property
    def order(self) -> str:
        if self.positions is not None:
            return "position along the slice normal"
        return "instance number" if self.instance_numbers is not None else "file name (no position or number)"


@dataclass(frozen=True)
class _SliceHeader:
    path: Path
    series_uid: str
    size: tuple[int, int]
    position: float | None
    orientation: tuple[float, ...] | None
    instance: int | None
    modality: str
    series_number: str
    description: str
    deflated: bool
    sequence: str


def _nibabel_dicom_wrapper(ds):
    """nibabel's DICOM wrapper (slice normal and position along it), without its import warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        from nibabel.nicom.dicomwrappers import wrapper_from_data
    return wrapper_from_data(ds)


def _slice_header(path: Path) -> _SliceHeader | None:
    """The series facts of a single-frame DICOM image, or None (not DICOM, multi-frame, no series
    UID, unreadable: such a file is classified on its own and the reader reports any problem)."""
    try:
        head = read_head(path)
        if sniff_format(head) != "DICOM":
            return None
        ds = read_header(path, head)
        uid = str(ds.get("SeriesInstanceUID", "") or "")
        if not uid or int(ds.get("NumberOfFrames", 1) or 1) != 1 or not ds.get("Rows"):
            return None
        wrapper = _nibabel_dicom_wrapper(ds)
        try:
            # nibabel's normal is column x row direction, the reverse of DICOM's row x column: negated,
            # axial slices run from the feet up, as in a NIfTI volume.
            position = None if wrapper.slice_indicator is None else -wrapper.slice_indicator
        except Exception:  # an orientation nibabel cannot use: ordered by instance number instead
            position = None
        iop = ds.get("ImageOrientationPatient")
        instance = ds.get("InstanceNumber")
        return _SliceHeader(path, uid, (int(ds.Rows), int(ds.Columns)),
                            None if position is None else float(position),
                            None if iop is None else tuple(round(float(v), 3) for v in iop),
                            None if instance in (None, "") else int(instance),
                            str(ds.get("Modality", "")), str(ds.get("SeriesNumber", "") or ""),
                            str(ds.get("SeriesDescription", "") or ""),
                            ds.file_meta.get("TransferSyntaxUID") == DEFLATED_UID, dicom_sequence(ds))
    except Exception:  # pydicom raises many kinds on damaged headers; the full read reports them
        return None


def group_dicom_series(files: list[Path]) -> list[Path | DicomSeries]:
    """A folder's files with the single-frame DICOM files of each series (two or more files with one
    SeriesInstanceUID) gathered into one :class:`DicomSeries`, placed where its first file was;
    every other file stays as it is."""
    headers = {f: _slice_header(f) for f in files}
    members: dict[tuple, list[_SliceHeader]] = {}
    for h in headers.values():
        if h is not None:
            members.setdefault(_stack_key(h), []).append(h)
    planes: dict[str, int] = {}
    for uid, _plane in members:
        planes[uid] = planes.get(uid, 0) + 1
    out: list[Path | DicomSeries] = []
    placed: set[tuple] = set()
    for f in files:
        h = headers[f]
        key = None if h is None else _stack_key(h)
        if key is None or len(members[key]) < 2:
            out.append(f)
        elif key not in placed:
            placed.add(key)
            note = () if planes[h.series_uid] == 1 else (
                f"the series holds slices in {planes[h.series_uid]} orientations; each is scored as its own study",)
            out.append(_ordered_series(members[key], note))
    return out


def stack_key(path: Path) -> tuple | None:
    """The series stack a single-frame DICOM file belongs to (series UID and orientation), or None
    (not such a file): what a folder watcher waits on before scoring a series whole."""
    h = _slice_header(path)
    return None if h is None else _stack_key(h)


def _stack_key(h: _SliceHeader) -> tuple:
    """One volume per series and orientation: a localiser series with three planes is three stacks."""
    return h.series_uid, None if h.orientation is None else tuple(round(v, 2) for v in h.orientation)


def _ordered_series(headers: list[_SliceHeader], notes: tuple[str, ...] = ()) -> DicomSeries:
    same_plane = len({_stack_key(h) for h in headers}) == 1  # the grouping's own rounding, never a finer one
    by_position = same_plane and all(h.position is not None for h in headers)
    by_instance = all(h.instance is not None for h in headers)
    if by_position:
        headers = sorted(headers, key=lambda h: (h.position, h.instance or 0, h.path.name))
    elif by_instance:
        headers = sorted(headers, key=lambda h: (h.instance, h.path.name))
    else:
        headers = sorted(headers, key=lambda h: h.path.name)
    orientation = headers[0].orientation if same_plane else None
    plan = iop_plan(orientation) if orientation is not None else None
    return DicomSeries(tuple(h.path for h in headers), tuple(h.size for h in headers),
                       tuple(h.position for h in headers) if by_position else None,
                       tuple(h.instance for h in headers) if by_instance else None,
                       plan, headers[0].modality, headers[0].series_number, headers[0].description, notes,
                       tuple(h.deflated for h in headers), orientation, headers[0].sequence)


def series_of(path: str | Path) -> DicomSeries | None:
    """The series a single DICOM file belongs to among the files of its folder (None when alone)."""
    path = Path(path)
    if _slice_header(path) is None:
        return None
    try:
        siblings = sorted(f for f in path.parent.iterdir() if f.is_file() and is_image_file(f))
    except OSError:
        return None
    for item in group_dicom_series(siblings):
        if isinstance(item, DicomSeries) and path.resolve() in {f.resolve() for f in item.files}:
            return item
    return None


def missing_slices(series: DicomSeries) -> list[str]:
    """Gaps in a series, in words: spacing along the normal above 1.5 times the usual one (between
    distinct positions, so two echoes per position do not hide a gap), positions that hold more than
    one slice, or missing instance numbers when there are no positions."""
    notes = list(series.notes)
    if series.positions is not None:
        positions = np.round(np.asarray(series.positions, np.float64), 3)
        distinct, counts = np.unique(positions, return_counts=True)
        if (counts > 1).any():
            notes.append(f"{int((counts > 1).sum())} position(s) hold more than one slice (repeated slices or "
                         f"echoes, up to {int(counts.max())} per position); every slice is scored")
        steps = np.diff(distinct)
        usual = float(np.median(steps)) if len(steps) > 1 else 0.0
        if usual > 0:
            for k in np.flatnonzero(steps > 1.5 * usual):
                lost = int(round(steps[k] / usual)) - 1
                first = int(np.searchsorted(positions, distinct[k], side="right")) - 1
                notes.append(f"{lost} slice(s) missing between slices {first} and {first + 1} "
                             f"({steps[k]:.1f} mm apart where {usual:.1f} mm is usual)")
    elif series.positions is None and series.instance_numbers is not None:
        numbers = np.array(series.instance_numbers)
        for k in np.flatnonzero(np.diff(numbers) > 1):
            notes.append(f"{int(numbers[k + 1] - numbers[k] - 1)} slice(s) missing between slices {k} and {k + 1} "
                         f"(instance numbers {numbers[k]} and {numbers[k + 1]})")
    if series.positions is None:
        notes.append(f"slice order from the {series.order}")
    return notes


def open_series(series: DicomSeries, opened: Path | None = None, levels: Levels | None = None) -> Scan:
    """A DICOM series as one scan: slice ``k`` is file ``k`` in slice order, decoded when shown.

    ``opened`` (one of its files) names the scan and is its first shown slice: the window shows
    the file the user opened. ``levels``: the study's grey scale when already known (a batch row's
    picture), so no slice is sampled again. Slices of different sizes cannot form a volume: that is
    an error naming two of the files."""
    sizes = sorted(set(series.sizes))
    if len(sizes) > 1:
        first = series.files[series.sizes.index(sizes[0])]
        other = series.files[series.sizes.index(sizes[1])]
        raise ImageReadError(series.path, "the series' slices have different sizes: "
                                          f"{sizes[0][1]}x{sizes[0][0]} ({first.name}) and "
                                          f"{sizes[1][1]}x{sizes[1][0]} ({other.name}); each file is read on its own "
                                          "when opened by itself")
    rows, cols = sizes[0]
    n = len(series.files)
    info = {"format": "DICOM series", "size": f"{cols}x{rows} pixels x {n} slices", "slices": str(n),
            "modality": series.modality, "series number": series.series_number,
            "series description": series.description, "slice order": series.order,
            "orientation": series.plan.describe() if series.plan is not None else "as stored"}
    resolved = [f.resolve() for f in series.files]
    default = resolved.index(opened.resolve()) if opened is not None and opened.resolve() in resolved else n // 2

    def read(k: int) -> Plane:
        # The header was read when grouping: a file known not to be deflated is read once, for its pixels.
        checked = len(series.deflated) == n and not series.deflated[k]
        # Each file orients its own plane from its orientation (the series' plan, for one stack).
        return open_dicom(series.files[k], deflate_checked=checked).plane(0)

    edges = None
    if series.plan is not None:
        right, down = np.asarray(series.orientation[:3]), np.asarray(series.orientation[3:])
        edges = Edges.from_directions(*series.plan.screen_directions(right, down))
    return Scan(opened or series.path, "DICOM series", n, default, read, info, notes=missing_slices(series),
                edges=edges, positions=list(series.positions) if series.positions is not None else None,
                sequence=series.sequence, _levels=levels)
