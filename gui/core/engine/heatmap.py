"""Heatmap maths: class activation map -> image-sized heat in [0, 1] -> coloured overlay.

The model saw the image padded to a square and resized; the map is mapped back through the
same geometry so that the heat lies on the anatomy that produced it. No Qt.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from gui.core.engine.preprocess import Geometry

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


def heat_to_frame(grid: np.ndarray, geometry: Geometry, height: int, width: int) -> np.ndarray:
    """Upsample a ``[h, w]`` map in 0..1 over the model input to the ``height x width`` frame.

    The map covers the square region of the frame the model saw (``geometry``, which may reach
    past the frame's edges); it is resized to that square (bilinear between cell centres) and placed
    on the frame, and what falls outside the frame is dropped. A ring of zero cells around the grid
    lets the map fade out over the outer half-cell instead of ending in a hard-edged square.
    """
    g = geometry
    grid = np.pad(np.asarray(grid, np.float32), 1)
    h, w = grid.shape
    big_h, big_w = round(g.side * h / (h - 2)), round(g.side * w / (w - 2))
    padded = np.asarray(Image.fromarray(grid).resize((big_w, big_h), Image.BILINEAR))
    top, left = (big_h - g.side) // 2, (big_w - g.side) // 2
    square = padded[top:top + g.side, left:left + g.side]
    heat = np.zeros((height, width), np.float32)
    where = g.overlap(height, width)
    if where is not None:
        rows, cols, s_rows, s_cols = where
        heat[rows, cols] = square[s_rows, s_cols]
    return np.clip(heat, 0.0, 1.0)


def cam_to_image(cam: np.ndarray, height: int, width: int, geometry: Geometry | None = None) -> np.ndarray:
    """A class activation map (positive part, scaled to its peak) on the frame; without a geometry,
    the model saw the frame padded to a centred square."""
    if geometry is None:
        side = max(height, width)
        geometry = Geometry(-((side - height) // 2), -((side - width) // 2), side)
    return heat_to_frame(normalise_cam(cam), geometry, height, width)


def blend(rgb: np.ndarray, heat: np.ndarray, opacity: float = 0.45, colormap: str = "inferno") -> np.ndarray:
    """Colour ``heat`` (``[H, W]`` in 0..1) and blend it over ``rgb``; opacity scales with heat,
    so cold regions leave the anatomy visible."""
    lut = colormap_lut(colormap).astype(np.float32)
    heat = np.clip(heat, 0, 1)
    level = (heat * 255).astype(np.uint8)
    alpha = opacity * heat
    keep = 1 - alpha
    out = np.empty(rgb.shape, np.uint8)
    for c in range(3):  # channel by channel: half the time of one [H, W, 3] expression, the same float32 sums
        v = rgb[..., c] * keep
        v += lut[:, c][level] * alpha
        v += 0.5
        out[..., c] = v  # truncation, as astype(uint8)
    return out


def contour(heat: np.ndarray, level: float = 0.5) -> np.ndarray:
    """The outline of the places where ``heat >= level``: pixels inside whose 4-neighbourhood leaves it
    (bool ``[H, W]``), drawn over the overlay so the region reads without judging colours."""
    inside = np.asarray(heat) >= level
    padded = np.pad(inside, 1, constant_values=False)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return inside & ~interior


def draw_contour(rgb: np.ndarray, heat: np.ndarray, level: float = 0.5, colour=(0, 255, 255)) -> np.ndarray:
    """``rgb`` with the outline of ``heat >= level`` in ``colour`` (cyan: apart from every colour map's hues)."""
    out = rgb.copy()
    out[contour(heat, level)] = colour
    return out
