"""When to say "don't trust this answer": caution scores measured on the leave-one-source-out folds.

Each fold's test part is a collection the model never saw, so a caution rule chosen here is judged
on the situation it is for (a scan from elsewhere), not on the training collections. Candidate
scores of one image:

* ``margin``: closeness of P(tumour) to the decision threshold, ``1 - |2p - 1|``;
* ``heads``: disagreement of the detector and the heatmap head, ``|P(tumour) - max heatmap|``;
* ``embedding``: Mahalanobis distance of the embedding to the fold's validation embeddings
  (what the app's out-of-distribution score measures, fitted on in-distribution images).

The rule shipped flags an answer when its detector and tumour-map heads disagree (one says tumour,
the other not: what the app reports as "the models disagree") or when P(tumour) lies in a band around
the threshold: the narrowest band whose unflagged answers reach the target accuracy on the held-out
folds pooled with equal weight (a plain held-out quantile; no promise beyond those folds).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from training import multitask as mt
from training import split as splits
from training.metrics import roc_auc

TARGET_ACCURACY = 0.95


def heat_level(run: Path, names: list[str], tg: dict) -> float:
    """The tumour map's peak level that best tells tumour from no tumour on the held-out folds (Youden,
    each collection weighted alike, 0.50-0.99): where the map "says tumour" for the disagreement check.
    v3's 14x14 map peaks at 0.75 on half of Br35H's normal scans, so 0.5 called half of them disputed."""
    from training.choose import fold_mean_rates

    ys, hs = {}, {}
    for f in names:
        z = np.load(run / f / "predictions.npz")
        ys[f], hs[f] = tg["y"][z["index"]], z["heatmap"].reshape(len(z["index"]), -1).max(axis=1).astype(np.float64)
    levels = np.round(np.arange(0.50, 0.995, 0.01), 2)
    return float(max(levels, key=lambda t: (sum(fold_mean_rates(ys, hs, t)), -t)))


def fold_scores(run: Path, fold: str, tg: dict, threshold: float = 0.5, level: float = 0.5) -> dict[str, np.ndarray]:
    """Per test image of a fold: P(tumour), error at ``threshold``, the caution scores, and whether
    the heads disagree as the app decides it (answer at the threshold vs a map location >= ``level``)."""
    z = np.load(run / fold / "predictions.npz")
    idx = z["index"]
    p = z["probabilities"][:, 1]
    err = ((p >= threshold) != (tg["y"][idx] == 1)).astype(np.int64)
    heat = z["heatmap"].reshape(len(idx), -1).max(axis=1)
    ve = z["val_embedding"].astype(np.float64)
    precision = np.linalg.pinv(np.cov(ve.T) + 1e-3 * np.eye(ve.shape[1]))
    d = z["embedding"] - ve.mean(axis=0)
    return {"p": p, "error": err, "margin": -np.abs(p - threshold), "heads": np.abs(p - heat), "threshold": threshold,
            "disagree": (p >= threshold) != (heat >= level), "embedding": np.einsum("nf,fg,ng->n", d, precision, d)}


def flagged(s: dict[str, np.ndarray], h: float) -> np.ndarray:
    """The shipped rule: heads disagree, or P(tumour) within ``h`` of the threshold."""
    return s["disagree"] | (np.abs(s["p"] - s["threshold"]) < h)


def band_for(folds: dict[str, dict], target: float = TARGET_ACCURACY) -> float:
    """Half-width h of the band ``|p - threshold| < h`` flagged as uncertain (beside disagreeing heads): the
    smallest h (0.01 steps) whose unflagged answers are at least ``target`` accurate, pooling folds
    with equal weight."""
    for h in np.arange(0.0, 0.5, 0.01):
        accs = [1 - f["error"][~flagged(f, h)].mean() for f in folds.values() if (~flagged(f, h)).any()]
        if accs and np.mean(accs) >= target:
            return float(round(h, 2))
    return 0.5


def analyse(run_dir: str, catalogue_path: str, target: float = TARGET_ACCURACY) -> dict:
    """AUROC of each score for errors, risk-coverage points and the band's figures per fold."""
    run = Path(run_dir)
    tg = mt.targets(splits.load(catalogue_path))
    names = sorted(p.parent.name for p in run.glob("*/predictions.npz"))
    from training.choose import decision_threshold

    t = decision_threshold(run)
    held = [f for f in names if f != "in-distribution"]
    level = heat_level(run, held, tg) if (run / "choice.json").exists() else 0.5  # v2 runs keep their 0.5
    scores = {f: fold_scores(run, f, tg, t, level) for f in names}
    held_out = {f: s for f, s in scores.items() if f != "in-distribution"}
    h = band_for(held_out, target)
    out: dict = {"target_unflagged_accuracy": target, "band_half_width": h, "heat_level": level,
                 "rule": f"caution when the heads disagree (the map's peak >= {level:.2f} against the answer) or "
                         f"|P(tumour) - {t:.2f}| < {h:.2f}", "folds": {}}
    for f, s in scores.items():
        flags = flagged(s, h)
        err = s["error"]
        curve = []
        for coverage in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
            keep = s["margin"] <= np.quantile(s["margin"], coverage)
            curve.append({"coverage": coverage, "accuracy": float(1 - err[keep].mean())})
        out["folds"][f] = {
            "n": int(len(err)), "accuracy": float(1 - err.mean()),
            "error_auroc": {k: (roc_auc(err, s[k]) if 0 < err.sum() < len(err) else None)
                            for k in ("margin", "heads", "embedding")},
            "flagged_share": float(flags.mean()),
            "disagree_share": float(s["disagree"].mean()),
            "accuracy_unflagged": float(1 - err[~flags].mean()) if (~flags).any() else None,
            "accuracy_flagged": float(1 - err[flags].mean()) if flags.any() else None,
            "risk_coverage_by_margin": curve,
        }
    return out


def write(run_dir: str, catalogue_path: str) -> dict:
    result = analyse(run_dir, catalogue_path)
    (Path(run_dir) / "caution.json").write_text(json.dumps(result, indent=1))
    return result


# ---------------------------------------------------------------- test-time augmentation and seed ensembles


def mirrored_probability(run: Path, fold: str, features_dir: str, index: np.ndarray) -> np.ndarray:
    """P(tumour) of the fold's head on the mirrored images (the cached ``mirror`` view)."""
    from training import features as feats

    head = mt.build_head(*mt.labels_of(run))
    head.load_weights(run / fold / "head.weights.h5")
    temperature = json.loads((run / fold / "metrics.json").read_text())["temperature"]
    mirror, _meta = feats.load(features_dir, feats.MIRROR_VIEW)
    return mt.predict(head, np.asarray(mirror[index]), temperature)["probabilities"][:, 1]


def schemes(run: Path, seeds: list[Path], fold: str, features_dir: str) -> dict[str, dict[str, np.ndarray]]:
    """For one fold: each way of answering (its P(tumour)) and the disagreement flag that goes with it.

    ``single``: the shipped model; ``mirror TTA``: mean of the image and its mirror image;
    ``seed ensemble``: mean of the heads of every seed run; ``ensemble + TTA``: both. Disagreement:
    the shipped model's heads disagree, or any member's answer differs from another's."""
    z = np.load(run / fold / "predictions.npz")
    idx = z["index"]
    p0 = z["probabilities"][:, 1]
    heads = (p0 >= 0.5) != (z["heatmap"].reshape(len(idx), -1).max(axis=1) >= 0.5)
    members = [p0]
    for s in seeds:
        zs = np.load(s / fold / "predictions.npz")
        assert np.array_equal(zs["index"], idx), f"{s} {fold}: another test part"
        members.append(zs["probabilities"][:, 1])
    pm = mirrored_probability(run, fold, features_dir, idx)

    def scheme(ps: list[np.ndarray]) -> dict[str, np.ndarray]:
        votes = np.stack([p >= 0.5 for p in ps])
        return {"p": np.mean(ps, axis=0), "disagree": heads | (votes.any(axis=0) != votes.all(axis=0)),
                "spread": np.stack(ps).std(axis=0)}

    out = {"single": scheme([p0]), "mirror TTA": scheme([p0, pm])}
    if seeds:
        out["seed ensemble"] = scheme(members)
        out["ensemble + TTA"] = scheme(members + [pm])
    return out


def _band(folds: list[dict], target: float, t: float = 0.5) -> float:
    for h in np.arange(0.0, 0.5, 0.01):
        accs = [1 - f["error"][~(f["disagree"] | (np.abs(f["p"] - t) < h))].mean() for f in folds
                if (~(f["disagree"] | (np.abs(f["p"] - t) < h))).any()]
        if accs and np.mean(accs) >= target:
            return float(round(h, 2))
    return 0.5


def _nested(data: dict[str, dict[str, dict]], target: float, t: float = 0.5) -> dict:
    """Every scheme on every fold: accuracy, error AUROC of its margin (+ disagreement), and the band
    rule chosen on the *other* held-out folds (nested: each fold's coverage is what a new collection
    would get)."""
    out: dict = {"target_unflagged_accuracy": target, "threshold": t, "schemes": {}}
    for name, folds in data.items():
        held = {f: s for f, s in folds.items() if f != "in-distribution"}
        rows = {}
        for fold, s in folds.items():
            others = [v for f, v in held.items() if f != fold]
            h = _band(others, target, t)
            flags = s["disagree"] | (np.abs(s["p"] - t) < h)
            err = s["error"]
            score = -np.abs(s["p"] - t) + s["disagree"]
            rows[fold] = {"n": int(len(err)), "accuracy": float(1 - err.mean()),
                          "error_auroc": roc_auc(err, score) if 0 < err.sum() < len(err) else None,
                          "band_from_other_folds": h, "answered": float(1 - flags.mean()),
                          "accuracy_unflagged": float(1 - err[~flags].mean()) if (~flags).any() else None}
        out["schemes"][name] = {"band_all_held_out": _band(list(held.values()), target, t), "folds": rows}
    return out


def compare(run_dir: str, seed_dirs: list[str], features_dir: str, catalogue_path: str,
            target: float = TARGET_ACCURACY) -> dict:
    """Test-time mirroring and seed ensembles of the frozen run on every fold (``_nested``)."""
    run, seeds = Path(run_dir), [Path(s) for s in seed_dirs]
    tg = mt.targets(splits.load(catalogue_path))
    names = sorted(p.parent.name for p in run.glob("*/predictions.npz"))
    data: dict[str, dict[str, dict]] = {}
    for fold in names:
        y = tg["y"][np.load(run / fold / "predictions.npz")["index"]] == 1
        for name, s in schemes(run, seeds, fold, features_dir).items():
            s["error"] = ((s["p"] >= 0.5) != y).astype(np.int64)
            data.setdefault(name, {})[fold] = s
    return _nested(data, target)


def pair(run_dir: str, catalogue_path: str, target: float = TARGET_ACCURACY) -> dict:
    """A diverse pair: the fine-tuned model (the run's chosen epoch) with the frozen model it started
    from (its epoch 0): mean P(tumour), a caution when either member's heads or the two members'
    answers disagree; against the fine-tuned model alone, at the run's threshold."""
    from training.choose import decision_threshold

    run = Path(run_dir)
    t = decision_threshold(run)
    tg = mt.targets(splits.load(catalogue_path))
    data: dict[str, dict[str, dict]] = {}
    for fold in sorted(p.parent.name for p in run.glob("*/predictions.npz")):
        z1, z0 = np.load(run / fold / "predictions.npz"), np.load(run / fold / "predictions-0.npz")
        y = tg["y"][z1["index"]] == 1
        ps = [z1["probabilities"][:, 1], z0["probabilities"][:, 1]]
        heads = [(p >= t) != (z["heatmap"].reshape(len(p), -1).max(axis=1) >= 0.5) for p, z in zip(ps, (z1, z0))]
        for name, members in (("fine-tuned alone", [0]), ("pair: fine-tuned + frozen", [0, 1])):
            p = np.mean([ps[k] for k in members], axis=0)
            votes = np.stack([ps[k] >= t for k in members])
            disagree = np.any([heads[k] for k in members], axis=0) | (votes.any(axis=0) != votes.all(axis=0))
            data.setdefault(name, {})[fold] = {"p": p, "disagree": disagree,
                                               "error": ((p >= t) != y).astype(np.int64)}
    return _nested(data, target, t)
