"""Evaluate a trained run on one part of a split: metrics.json and the plots a reader expects."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from training import split as splits
from training.data import load_images
from training.metrics import (
    CALIBRATION_BINS,
    classification_metrics,
    roc_curve,
    tumor_scores,
)


def predict_run(run: Path, config: dict, x: np.ndarray) -> np.ndarray:
    """Calibrated class probabilities of a run's model for ``uint8 [N, H, W, 3]`` images."""
    if config["arch"] == "baseline":
        import joblib

        from training.train import baseline_features

        return joblib.load(run / "model.joblib").predict_proba(baseline_features(x))
    import keras

    model = keras.saving.load_model(run / "model.keras", compile=False)
    logits_model = keras.Model(model.inputs, model.get_layer("logits").output)
    logits = np.concatenate([logits_model.predict_on_batch(np.asarray(x[i:i + 64], np.float32))
                             for i in range(0, len(x), 64)])
    z = logits / config["temperature"]
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p / p.sum(axis=1, keepdims=True)


def evaluate(run_dir: str, part: str = "test", splits_path: str | None = None, name: str | None = None,
             cache_dir: str | None = "runs/.cache") -> dict:
    run = Path(run_dir)
    config = json.loads((run / "config.json").read_text())
    doc = splits.load(splits_path or config["splits"])
    if doc["classes"] != config["classes"]:
        raise SystemExit(f"split classes {doc['classes']} differ from the model's {config['classes']}")
    files, y = splits.part_items(doc, part)
    x = load_images(files, config["input_size"], Path(cache_dir) if cache_dir else None)
    probs = predict_run(run, config, x)
    result = classification_metrics(y, probs, config["classes"], config["no_tumor_labels"])
    # Per source dataset: one pooled figure can hide a model that only works on one source.
    datasets = np.array([r["dataset"] for r in doc["items"] if r["part"] == part])
    if len(set(datasets)) > 1:
        result["by_dataset"] = {
            d: classification_metrics(y[datasets == d], probs[datasets == d], config["classes"], config["no_tumor_labels"])
            for d in sorted(set(datasets))
        }
    result["split_file"] = str(splits_path or config["splits"])
    result["part"] = part
    result["split_method"] = doc["method"]
    name = name or part
    metrics_file = run / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
    metrics[name] = result
    metrics_file.write_text(json.dumps(metrics, indent=1))
    plot(run, name, config, y, probs, result)
    det = result["tumor_detection"]
    print(f"{run.name} [{name}] n={result['n']} accuracy={result['accuracy']:.4f} "
          f"sensitivity={det['sensitivity']} specificity={det['specificity']} auc={det['roc_auc']} ece={result['ece']:.4f}")
    return result


def plot(run: Path, name: str, config: dict, y: np.ndarray, probs: np.ndarray, result: dict) -> None:
    """Confusion matrix, ROC curve and reliability diagram side by side (``eval_NAME.png``), and the
    training curves of the run (``training_curves.png``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    plot_confusion(axes[0], np.array(result["confusion_matrix"]), config["classes"], name, len(y))
    plot_roc(axes[1], y, probs, config, result)
    plot_reliability(axes[2], y, probs, result["ece"])
    fig.tight_layout()
    fig.savefig(run / f"eval_{name}.png", dpi=90)
    plt.close(fig)
    plot_training_curves(run)


def plot_confusion(ax, cm: np.ndarray, classes: list[str], name: str, n: int) -> None:
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=30)
    ax.set_yticks(range(len(classes)), classes)
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix ({name}, n={n})")


def plot_roc(ax, y: np.ndarray, probs: np.ndarray, config: dict, result: dict) -> None:
    classes = config["classes"]
    truth = np.array([classes[k] not in config["no_tumor_labels"] for k in y]).astype(int)
    if truth.min() != truth.max():
        fpr, tpr = roc_curve(truth, tumor_scores(probs, classes, config["no_tumor_labels"]))
        ax.plot(fpr, tpr, label=f"AUC {result['tumor_detection']['roc_auc']:.4f}")
        ax.legend(loc="lower right")
    else:
        ax.text(0.5, 0.5, "one class only: no ROC", ha="center")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    ax.set_title("ROC, tumour vs no tumour")


def plot_reliability(ax, y: np.ndarray, probs: np.ndarray, ece: float) -> None:
    """Accuracy against confidence in the ECE's own bins."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    edges = np.linspace(0, 1, CALIBRATION_BINS + 1)
    centres, accs = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            centres.append(conf[m].mean())
            accs.append(correct[m].mean())
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.plot(centres, accs, "o-")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"reliability (ECE {ece:.4f})")


def plot_training_curves(run: Path) -> None:
    """Loss and accuracy per epoch over all phases, training and validation."""
    import matplotlib.pyplot as plt

    logs = sorted(run.glob("log_phase*.csv"))
    if not logs:
        return
    rows = []
    for log in logs:
        with log.open() as fh:
            rows += list(csv.DictReader(fh))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key in zip(axes, ["loss", "accuracy"]):
        ax.plot([float(r[key]) for r in rows], label="train")
        ax.plot([float(r["val_" + key]) for r in rows], label="validation")
        ax.set_xlabel("epoch (all phases)")
        ax.set_title(key)
        ax.legend()
    fig.tight_layout()
    fig.savefig(run / "training_curves.png", dpi=90)
    plt.close(fig)
