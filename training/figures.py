"""The original study's pictures of what the network computes: first- and last-layer feature maps of a
few test images, and a diagram of the multi-task architecture.

Only brain-tumor-mri images (CC0) are drawn: the figures are committed, and Br35H, LGG and figshare
images may not be redistributed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training import features as feats

FIRST_LAYER = "Conv1_relu"
SHOWN_CHANNELS = 6


def activation_figure(weights: str, doc: dict, out: Path, n_images: int = 3, seed: int = 0) -> Path:
    """Input, six first-layer and six last-layer feature maps (the most active) of ``n_images``
    brain-tumor-mri test images, one row each."""
    import keras
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backbone = feats.backbone(weights)
    probe = keras.Model(backbone.inputs, [backbone.get_layer(FIRST_LAYER).output, backbone.output])
    pool = [r for r in doc["items"] if r["dataset"] == "brain-tumor-mri" and r["part"] == "test"]
    rng = np.random.default_rng(seed)
    picked = [pool[i] for i in rng.permutation(len(pool))[:n_images]]
    x = np.stack([feats.item_input(doc, r)[1].pixels for r in picked])
    first, last = (np.asarray(a) for a in probe.predict_on_batch(x.astype(np.float32)))
    cols = 1 + 2 * SHOWN_CHANNELS
    fig, axes = plt.subplots(n_images, cols, figsize=(cols * 1.3, n_images * 1.45))
    for row, rec in enumerate(picked):
        axes[row, 0].imshow(x[row])
        axes[row, 0].set_title(rec["label"].replace("_", " "), fontsize=7)
        for k, ch in enumerate(np.argsort(-first[row].mean(axis=(0, 1)))[:SHOWN_CHANNELS]):
            axes[row, 1 + k].imshow(first[row, :, :, ch], cmap="gray")
            axes[row, 1 + k].set_title(f"conv1 #{ch}", fontsize=6)
        for k, ch in enumerate(np.argsort(-last[row].mean(axis=(0, 1)))[:SHOWN_CHANNELS]):
            axes[row, 1 + SHOWN_CHANNELS + k].imshow(last[row, :, :, ch], cmap="inferno")
            axes[row, 1 + SHOWN_CHANNELS + k].set_title(f"last #{ch}", fontsize=6)
    for ax in axes.ravel():
        ax.set_axis_off()
    fig.suptitle("MobileNetV2 feature maps: first convolution (112x112, edges and intensity) and last "
                 "(7x7, what the heads read)", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def architecture_figure(config: dict, out: Path) -> Path:
    """Boxes and arrows: file -> reader -> brain crop -> frozen backbone -> adapter -> three heads."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    boxes = [
        (0.02, 0.45, "scan file\n(any format)"),
        (0.16, 0.45, "reader\nopen_scan"),
        (0.30, 0.45, f"model_input\n{config['preprocessing']}\n224x224"),
        (0.46, 0.45, "MobileNetV2\nImageNet, frozen\n2.26 M params"),
        (0.62, 0.45, "7x7x1280\n-> 1x1 conv 256\n(adapter)"),
        (0.82, 0.78, "average -> dense 2\nP(tumour), CAM"),
        (0.82, 0.45, "average -> dense 3\nP(type | tumour)"),
        (0.82, 0.12, "1x1 conv -> sigmoid\nheatmap 7x7"),
    ]
    fig, ax = plt.subplots(figsize=(10, 3.2))
    for x, y, text in boxes:
        ax.text(x, y, text, ha="left", va="center", fontsize=8,
                bbox=dict(boxstyle="round,pad=0.4", facecolor="#eef3fb", edgecolor="#35618f"))
    for (x0, y0), (x1, y1) in [((0.11, 0.45), (0.16, 0.45)), ((0.24, 0.45), (0.30, 0.45)),
                               ((0.40, 0.45), (0.46, 0.45)), ((0.56, 0.45), (0.62, 0.45)),
                               ((0.74, 0.45), (0.82, 0.78)), ((0.74, 0.45), (0.82, 0.45)),
                               ((0.74, 0.45), (0.82, 0.12))]:
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops=dict(arrowstyle="->", color="#35618f"))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_axis_off()
    ax.set_title("One model, one inference: the shipped multi-task ONNX graph (reader and crop run in the app)",
                 fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
