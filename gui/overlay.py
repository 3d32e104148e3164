"""Heatmap maths: class activation map -> image-sized heat in [0, 1] -> coloured overlay.

The model saw the image padded to a square and resized; the map is mapped back through the
same geometry so that the heat lies on the anatomy that produced it. No Qt.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from gui.imaging import read_image

#: Perceptually uniform colour maps (matplotlib's, sampled at 17 points; interpolated to 256).
_ANCHORS = {
    "inferno": [(0, 0, 4), (11, 7, 36), (33, 12, 74), (61, 9, 101), (87, 16, 110), (113, 25, 110), (138, 34, 106),
                (163, 44, 97), (188, 55, 84), (210, 70, 68), (228, 90, 49), (241, 115, 29), (249, 142, 9),
                (252, 172, 17), (249, 203, 53), (242, 234, 105), (252, 255, 164)],
    "viridis": [(68, 1, 84), (72, 24, 106), (71, 45, 123), (66, 64, 134), (59, 82, 139), (51, 99, 141), (44, 114, 142),
                (38, 130, 142), (33, 145, 140), (31, 160, 136), (40, 174, 128), (63, 188, 115), (94, 201, 98),
                (132, 212, 75), (173, 220, 48), (216, 226, 25), (253, 231, 37)],
}
COLORMAPS = tuple(_ANCHORS)


def colormap_lut(name: str) -> np.ndarray:
    """``uint8 [256, 3]`` lookup table of a named colour map."""
    anchors = np.asarray(_ANCHORS[name], dtype=np.float32)
    x = np.linspace(0, 1, len(anchors))
    t = np.linspace(0, 1, 256)
    return np.stack([np.interp(t, x, anchors[:, k]) for k in range(3)], axis=1).round().astype(np.uint8)


def normalise_cam(cam: np.ndarray) -> np.ndarray:
    """Positive evidence only, scaled so the strongest position is 1 (all zeros if none)."""
    pos = np.maximum(np.asarray(cam, np.float32), 0.0)
    peak = float(pos.max()) if pos.size else 0.0
    return pos / peak if peak > 0 else np.zeros_like(pos)


def cam_to_image(cam: np.ndarray, height: int, width: int) -> np.ndarray:
    """Upsample a ``[h, w]`` map of the padded square input to the original ``height x width``.

    The map covers the square of side ``max(height, width)`` in which the image was centred;
    it is resized to that square (bilinear) and the padding cropped away.
    """
    side = max(height, width)
    heat = np.asarray(Image.fromarray(normalise_cam(cam)).resize((side, side), Image.BILINEAR))
    top, left = (side - height) // 2, (side - width) // 2
    return np.clip(heat[top:top + height, left:left + width], 0.0, 1.0)


def blend(rgb: np.ndarray, heat: np.ndarray, opacity: float = 0.45, colormap: str = "inferno") -> np.ndarray:
    """Colour ``heat`` (``[H, W]`` in 0..1) and blend it over ``rgb``; opacity scales with heat,
    so cold regions leave the anatomy visible."""
    lut = colormap_lut(colormap)
    colours = lut[(np.clip(heat, 0, 1) * 255).astype(np.uint8)].astype(np.float32)
    alpha = (opacity * np.clip(heat, 0, 1))[..., None]
    return (rgb.astype(np.float32) * (1 - alpha) + colours * alpha + 0.5).astype(np.uint8)


def save_overlay_png(path: Path, cam: np.ndarray, out_dir: Path) -> Path:
    """Write ``<name>.heatmap.png`` (the map over the displayed image) into ``out_dir``.

    Never replaces a file (``-1``, ``-2``... are appended instead) and never writes beside the
    scan unless ``out_dir`` is the scan's own folder by the user's choice.
    """
    rgb = read_image(path)
    heat = cam_to_image(cam, rgb.shape[0], rgb.shape[1])
    target = out_dir / f"{path.name}.heatmap.png"
    k = 1
    while target.exists():
        target = out_dir / f"{path.name}.heatmap-{k}.png"
        k += 1
    Image.fromarray(blend(rgb, heat)).save(target)
    return target
