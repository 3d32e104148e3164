"""The batch engine's layouts on the cores (decode threads, batches at once, threads per batch, batch size) and the rule used before any measurement."""

from __future__ import annotations

from dataclasses import dataclass

from gui.core.engine.model import cpu_count


@dataclass(frozen=True)
class EngineSettings:
    """One layout of the batch engine on the cores."""

    batch: int = 16
    decode_threads: int = 1
    inference_workers: int = 1
    inference_threads: int | None = None  # None: the model's own session (every core)

    def describe(self) -> str:
        threads = "every core" if self.inference_threads is None else _count(self.inference_threads, "thread")
        batches = f"one batch of {self.batch}" if self.inference_workers == 1 else \
            f"{self.inference_workers} batches of {self.batch} at once"
        return f"{batches} on {threads}{' each' if self.inference_workers > 1 else ''}, " \
               f"{_count(self.decode_threads, 'decode thread')}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def layouts(cores: int | None = None) -> list[EngineSettings]:
    """The layouts worth timing on ``cores`` cores: one batch of 16 over every core, or two batches of 8
    at once on half the cores each; one decode thread, or one per four cores on larger machines."""
    cores = cores or cpu_count()
    decoders = sorted({1, max(1, cores // 4)})
    out = []
    for d in decoders:
        out.append(EngineSettings(16, d, 1, cores))
        if cores >= 2:
            out.append(EngineSettings(8, d, 2, max(1, cores // 2)))
    return out


def rule(cores: int | None = None) -> EngineSettings:
    """The layout before any measurement: two batches at once when there are two cores or more (the
    faster layout where it was measured), else one."""
    return layouts(cores)[1 if (cores or cpu_count()) >= 2 else 0]
