"""How unlike the training images an embedding is: the out-of-distribution statistics a model card carries."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np


def encode_array(a: np.ndarray) -> dict:
    """A float32 array as JSON-safe base64 (model cards hold OOD statistics this way)."""
    a = np.ascontiguousarray(a, dtype="<f4")
    return {"shape": list(a.shape), "dtype": "float32", "base64": base64.b64encode(a.tobytes()).decode("ascii")}


def decode_array(d: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(d["base64"]), dtype="<f4").reshape(d["shape"])


@dataclass
class OodScorer:
    """How unlike the training data an embedding is: a probabilistic-PCA style distance.

    Inside the top-``k`` principal subspace of the training embeddings: Mahalanobis distance
    to the nearest class mean (shared covariance). Outside it: the residual norm over the
    residual standard deviation of the training data. Noise, photos and other non-MRI inputs
    land mostly in the residual, which a subspace-only distance would miss.
    ``score <= threshold`` for 99% of validation images.
    """

    mean: np.ndarray  # [F]
    components: np.ndarray  # [k, F], orthonormal principal directions divided by their std
    scale: np.ndarray  # [k], std of the training data along each direction
    class_means: np.ndarray  # [C, k], in whitened coordinates
    precision: np.ndarray  # [k, k], inverse of the shared within-class covariance (whitened)
    residual_variance: float  # per-dimension variance of the training data outside the subspace
    threshold: float

    @classmethod
    def from_card(cls, ood: dict) -> "OodScorer":
        scorer = cls(decode_array(ood["mean"]), decode_array(ood["components"]), decode_array(ood["scale"]),
                     decode_array(ood["class_means"]), decode_array(ood["precision"]),
                     float(ood["residual_variance"]), float(ood["threshold"]))
        scorer.check()
        return scorer

    def check(self, features: int | None = None) -> None:
        """The arrays fit each other (and ``features``, the embedding's width): a mismatch found here is
        a sentence at load time, not an error on every row later. Raises ValueError."""
        f = self.mean.shape[0] if self.mean.ndim == 1 else -1
        k = self.components.shape[0] if self.components.ndim == 2 else -1
        shapes = {"mean": (self.mean.shape, (f,)), "components": (self.components.shape, (k, f)),
                  "scale": (self.scale.shape, (k,)), "precision": (self.precision.shape, (k, k))}
        bad = [f"{name} is {list(got)}, expected {list(want)}" for name, (got, want) in shapes.items() if got != want]
        if self.class_means.ndim != 2 or self.class_means.shape[1] != k:
            bad.append(f"class_means is {list(self.class_means.shape)}, expected [classes, {k}]")
        if f < 1 or k < 1 or (features is not None and f != features):
            bad.append(f"the statistics are for {f} features, the model's embedding has {features}")
        if bad:
            raise ValueError("; ".join(bad))

    def score(self, embedding: np.ndarray) -> np.ndarray:
        # einsum, not ``@``: a BLAS call wakes OpenBLAS's threads, which then spin and steal
        # the cores ONNX Runtime is using (measured: inference 29% slower on 2 cores).
        d = np.asarray(embedding, np.float32) - self.mean  # [N, F]
        z = np.einsum("nf,kf->nk", d, self.components)  # [N, k] whitened
        diff = z[:, None, :] - self.class_means[None, :, :]  # [N, C, k]
        inside = np.einsum("nck,kl,ncl->nc", diff, self.precision, diff).min(axis=1)
        residual = np.maximum((d * d).sum(axis=1) - ((z * self.scale) ** 2).sum(axis=1), 0.0)
        return np.sqrt(np.maximum(inside, 0.0) + residual / max(self.residual_variance, 1e-12))
