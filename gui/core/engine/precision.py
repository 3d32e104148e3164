"""Which arithmetic the bundled models run in: float32, or their int8 files where this CPU runs int8 as measured.

The int8 files (``assets/models/int8/``, made by ``python -m export int8``) keep >= 99.5 % of float32's
answers on the in-distribution test and run ~1.4x faster on one thread, but they were measured on a CPU
with VNNI, whose instructions add u8 x s8 products in 32 bits. Without VNNI, ONNX Runtime adds them in
pairs that can saturate at 16 bits, and these files keep their weights' full int8 range, so int8 runs
only where the CPU has VNNI; elsewhere float32 runs and the reason is said. Float32 is the default:
issue 31's bar for int8 by default (every held-out fold's own model as well as the shipped one's test)
is not measured yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gui.core.resources import bundled_models

FP32, INT8 = "fp32", "int8"
PRECISIONS = (FP32, INT8)
DEFAULT = FP32
#: Words for each precision, as menus and messages name them.
NAMES = {FP32: "float32", INT8: "int8"}
#: The int8 files: the float32 files' names in this sub-folder of the bundled models' folder.
INT8_FOLDER = "int8"


def cpu_has_vnni() -> bool:
    """Whether this CPU has AVX512-VNNI or AVX-VNNI, as NumPy's run-time dispatch detected it (on every
    platform, where /proc/cpuinfo is Linux only); False where NumPy does not say."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as features  # NumPy 1.x
        except ImportError:
            return False
    return bool(features.get("AVX512VNNI") or features.get("AVXVNNI"))


@dataclass(frozen=True)
class Choice:
    """The model files to load, the precision they run in, and why that differs from the one asked
    for ("" when it does not)."""

    files: list[Path]
    precision: str
    note: str = ""


def bundled(requested: str = DEFAULT) -> Choice:
    """The bundled models in ``requested`` precision where they can run so, else in float32 with the reason."""
    if requested not in PRECISIONS:
        raise ValueError(f"unknown precision {requested!r}; known: {', '.join(PRECISIONS)}")
    fp32 = bundled_models()
    if requested == FP32 or not fp32:
        return Choice(fp32, FP32)
    why_not = _int8_problem(fp32)
    if why_not:
        return Choice(fp32, FP32, f"{why_not}: float32 runs")
    return Choice(_int8_files(fp32), INT8)


def _int8_files(fp32: list[Path]) -> list[Path]:
    return [f.parent / INT8_FOLDER / f.name for f in fp32]


def int8_unavailable() -> str:
    """Why the bundled models cannot run in int8 on this computer ("" when they can)."""
    return _int8_problem(bundled_models())


def _int8_problem(fp32: list[Path]) -> str:
    if not fp32 or not all(f.is_file() for f in _int8_files(fp32)):
        return "no int8 model is bundled with this copy"
    if not cpu_has_vnni():
        return "int8 runs only on a CPU with VNNI instructions (where it was measured), and this one has none"
    return ""


def describe(card: dict) -> str:
    """The card's arithmetic in words, for the model card and the report: which one runs and, for int8,
    how close it stays to float32 (the card's other figures are float32's: int8 is the same model's
    arithmetic, not a model of its own)."""
    p = card.get("precision") or {}
    if p.get("arithmetic") != INT8:
        return "float32"
    same = p.get("same_answer")
    kept = (f"; the same answer as float32 on {100 * same:.2f} % of {p.get('measured_on', 'its test images')}"
            if isinstance(same, (int, float)) else "")
    return f"int8 ({p.get('recipe', 'static quantization')}){kept}{_unseen(p.get('held_out'))}; the figures below " \
           "were measured in float32"


def _unseen(held_out: dict | None) -> str:
    """How int8 kept answers on collections a model never saw: the held-out folds' own models, each
    quantized by the same recipe (``python -m export int8-folds --card``); unseen scans flip more
    answers than the test part of collections the model trained on, and a user should read that."""
    if not held_out:
        return ""
    shares = sorted((100 * v["same_answer"], fold) for fold, v in held_out.items())
    listed = ", ".join(f"{fold} {share:.2f} %" for share, fold in shares)
    return (f"; on collections never trained on (the held-out folds' own models, same recipe), "
            f"{shares[0][0]:.2f}-{shares[-1][0]:.2f} % ({listed})")
