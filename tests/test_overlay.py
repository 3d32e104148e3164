"""The heatmap overlay: the colour map blended over the scan in proportion to the heat."""

from __future__ import annotations

import numpy as np
import pytest

from gui.core.engine.heatmap import blend, colormap_lut


def _reference(rgb, heat, opacity, colormap):
    """The overlay's definition as one expression: colour at the heat's level, alpha = opacity x heat."""
    colours = colormap_lut(colormap)[(np.clip(heat, 0, 1) * 255).astype(np.uint8)].astype(np.float32)
    alpha = (opacity * np.clip(heat, 0, 1))[..., None]
    return (rgb.astype(np.float32) * (1 - alpha) + colours * alpha + 0.5).astype(np.uint8)


@pytest.mark.parametrize("opacity", [0.0, 0.45, 0.8, 1.0])
@pytest.mark.parametrize("colormap", ["inferno", "viridis"])
def test_blend_is_its_definition_bit_for_bit(opacity, colormap):
    rng = np.random.default_rng(5)
    for shape in [(37, 53), (256, 256), (301, 200)]:
        rgb = (rng.random(shape + (3,)) * 255).astype(np.uint8)
        heat = rng.random(shape).astype(np.float32) * 1.2 - 0.1  # outside 0..1 too: clipped
        heat[: shape[0] // 3] = 0
        out = blend(rgb, heat, opacity, colormap)
        assert out.dtype == np.uint8 and np.array_equal(out, _reference(rgb, heat, opacity, colormap))
        assert np.array_equal(out[: shape[0] // 3], rgb[: shape[0] // 3])  # no heat: the scan untouched
