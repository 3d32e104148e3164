"""The answer for one image, slice or study: what the window shows and a CSV row holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from gui.core.engine.preprocess import Geometry

if TYPE_CHECKING:
    from gui.core.readers import DicomSeries
    from gui.core.readers.levels import Levels

@dataclass(frozen=True)
class Result:
    """The answer for one file, slice or study (or an error row with the reason).

    A study (a volume, multi-frame DICOM or DICOM series) fills the study fields: its verdict and
    probability follow the study rule (:mod:`gui.core.engine.study`), type, probabilities, heatmap and
    cautions are those of its key slice, and ``slices`` holds every slice's own answer (no frames).
    Frozen: a result crosses threads (the engine's workers, the window), so a change is a new result
    (``dataclasses.replace``), never an edit another thread may be reading.
    """

    path: str
    status: str = "ok"
    prediction: str = ""  # "tumor" | "no_tumor"
    tumor_probability: float | None = None
    confidence: float | None = None  # probability of the stated prediction
    tumor_type: str = ""  # only when the answer is "tumor"
    tumor_type_confidence: float | None = None  # P(type | tumour)
    ood_warning: str = ""
    error: str = ""
    models_disagree: bool | None = None  # detector vs type model, or detector head vs tumour-map head
    probabilities: dict[str, dict[str, float]] = field(default_factory=dict)  # column group -> label -> p
    heat: np.ndarray | None = None  # [h, w] in 0..1 over the detector's input: where the tumour evidence is
    geometry: Geometry | None = None  # the frame region the detector saw (maps ``heat`` onto the frame)
    frame: np.ndarray | None = field(default=None, repr=False)  # the decoded frame, kept only for heatmap export
    seconds: float = 0.0
    n_slices: int | None = None  # study only: slices scored
    max_slice: int | None = None  # study only: 0-based index of the most suspicious slice
    tumor_slices: str = ""  # study only: slice ranges where the study rule fires, "12-19;31"
    slices: list["Result"] | None = field(default=None, repr=False)  # study only: every slice's answer
    slice: int | None = None  # a slice's own answer: its index in the study
    series_description: str = ""  # study only: a DICOM series' SeriesDescription, where present
    sequence: str = ""  # the MR sequence (t1, t1c, t2, flair): the file's tags', else the model's reading, else ""
    sequence_from: str = ""  # "tags" (the file names it), "model" (the model's sequence head), "" unknown
    sequence_confidence: float | None = None  # the model's P(sequence), when it is the model's reading
    threshold: float = 0.5  # the decision threshold the answer was given at (the model card's; a study's rule's)
    #: study only: the DICOM series' files in slice order, when the study was one, and the study's grey
    #: scale: its thumbnail or heatmap export reads the key slice's file alone, not the folder's headers
    #: and the sampled slices again
    series: "DicomSeries | None" = field(default=None, repr=False)
    levels: "Levels | None" = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def is_study(self) -> bool:
        return self.n_slices is not None
