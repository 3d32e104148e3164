"""The batch engine's layouts on the cores (decode threads, batches at once, threads per batch, batch size) and the rule used before any measurement."""

from __future__ import annotations

from dataclasses import dataclass

from gui.core.engine.model import cpu_count


@dataclass(frozen=True)
class EngineSettings:
    """One layout of the batch engine on the cores."""

    batch: int = 16
    #: Threads decoding ahead of inference; 0: each inference worker decodes its own batch first.
    decode_threads: int = 1
    inference_workers: int = 1
    inference_threads: int | None = None  # None: the model's own session (every core)

    def describe(self) -> str:
        threads = "every core" if self.inference_threads is None else _count(self.inference_threads, "thread")
        batches = f"one batch of {self.batch}" if self.inference_workers == 1 else \
            f"{self.inference_workers} batches of {self.batch} at once"
        decoding = "each decoded by its own worker" if self.decode_threads == 0 else _count(self.decode_threads, "decode thread")
        return f"{batches} on {threads}{' each' if self.inference_workers > 1 else ''}, {decoding}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def layouts(cores: int | None = None) -> list[EngineSettings]:
    """The layouts worth timing on ``cores`` cores: one batch of 16 over every core, or two batches of 8
    at once on half the cores each; one decode thread, or one per four cores on larger machines; and two
    batches at once each decoded by its own worker (no decode thread: while one worker reads, the other
    runs its batch, and no third thread competes with them for the cores)."""
    cores = cores or cpu_count()
    decoders = sorted({1, max(1, cores // 4)})
    out = []
    for d in decoders:
        out.append(EngineSettings(16, d, 1, cores))
        if cores >= 2:
            out.append(EngineSettings(8, d, 2, max(1, cores // 2)))
    if cores >= 2:
        out.append(EngineSettings(8, 0, 2, max(1, cores // 2)))
    return out


def rule(cores: int | None = None) -> EngineSettings:
    """The layout before any measurement: on two cores or more, two batches at once each decoded by its
    own worker (the fastest where it was measured: the 2-core VM of docs/performance.md, 2-18 % over one
    decode thread feeding them), else one batch."""
    cores = cores or cpu_count()
    return EngineSettings(8, 0, 2, max(1, cores // 2)) if cores >= 2 else layouts(cores)[0]
