"""Augmented views of a model input, made before the frozen front (composable steps, MONAI-style).

Each view is a family of changes that a scan from another scanner, sequence, viewer or hospital
brings and that must not change the answer, so the families can be ablated one at a time:

* ``geometry``: one of the 8 flips / quarter turns (radiological vs neurological convention, a
  NIfTI shown upside down), a small rotation (+-15 degrees) and scale (0.9-1.1);
* ``mild``: geometry + bias field, gamma, window clipping (a bright lesion saturated by a narrow
  window), noise, blur or low resolution, JPEG re-encoding;
* ``strong``: geometry + a random monotone intensity curve, half the time inverted inside the head
  (a T1-like slice made to look T2-like), or a random shallow convolution network (GIN / RandConv,
  Ouyang et al. 2022), mixed with the original;
* ``paste``: tumour-free images get an expert-masked tumour of another image pasted in (TumorCP /
  CarveMix: intensity-matched, soft-edged, anywhere in the head, at every slice level), which makes
  them positives with the pasted mask; tumour images get the ``mild`` view.

Masks follow every geometric change. Everything is on the 224x224 model input (uint8 RGB, grey).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage

FAMILIES = ("as read", "geometry", "mild", "strong", "paste")


def dihedral(a: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 orientations: ``k % 4`` quarter turns, then a left-right mirror when ``k >= 4``."""
    a = np.rot90(a, k % 4)
    return np.ascontiguousarray(a[:, ::-1] if k >= 4 else a)


def geometry(grey: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random orientation, rotation and scale of an image (float 0-1) and its mask (float 0-1)."""
    k = int(rng.integers(8))
    grey, mask = dihedral(grey, k), dihedral(mask, k)
    angle, scale = rng.uniform(-15, 15), rng.uniform(0.9, 1.1)
    s = grey.shape[0]
    c = (s - 1) / 2
    theta = np.deg2rad(angle)
    m = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]) / scale
    offset = c - m @ np.array([c, c])
    grey = ndimage.affine_transform(grey, m, offset, order=1, mode="constant", cval=0.0)
    mask = ndimage.affine_transform(mask, m, offset, order=1, mode="constant", cval=0.0)
    return grey, mask


def head_of(grey: np.ndarray) -> np.ndarray:
    """The head (soft 0-1): the largest region above the background, filled and smoothed."""
    smooth = ndimage.gaussian_filter(grey, 2)
    above = smooth > max(0.06, 0.2 * float(np.percentile(smooth, 99)))
    labels, n = ndimage.label(above)
    if n == 0:
        return np.zeros_like(grey)
    largest = labels == 1 + int(np.argmax(ndimage.sum(above, labels, range(1, n + 1))))
    return ndimage.gaussian_filter(ndimage.binary_fill_holes(largest).astype(np.float32), 1.5)


def mild(grey: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scanner and viewer differences: bias field, gamma, window clipping, noise, blur or low resolution."""
    s = grey.shape[0]
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s - 0.5
    a = rng.normal(0, 0.3, 5)
    grey = np.clip(grey * np.exp(a[0] * xx + a[1] * yy + a[2] * xx * yy + a[3] * xx * xx + a[4] * yy * yy), 0, 1)
    grey = grey ** np.exp(rng.uniform(-0.35, 0.35))
    if rng.random() < 0.3:  # a narrow window: the brightest tissue saturates
        top = np.percentile(grey, rng.uniform(90, 99.5))
        grey = np.clip(grey / max(top, 1e-3), 0, 1)
    grey = np.clip(grey + rng.normal(0, rng.uniform(0, 0.03), grey.shape), 0, 1)
    choice = rng.integers(3)
    if choice == 0:
        grey = ndimage.gaussian_filter(grey, rng.uniform(0.3, 1.3))
    elif choice == 1:
        low = int(rng.integers(80, 160))
        img = Image.fromarray((grey * 255).astype(np.uint8)).resize((low, low), Image.BILINEAR).resize((s, s), Image.BILINEAR)
        grey = np.asarray(img, np.float32) / 255
    return grey


def monotone_curve(grey: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random increasing intensity curve (another sequence's contrast between tissues)."""
    knots = np.concatenate([[0.0], np.cumsum(rng.dirichlet(np.full(6, 0.8)))])
    return np.interp(grey, np.linspace(0, 1, 7), knots).astype(np.float32)


def rand_conv(grey: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random shallow convolution network (two 3x3 layers, leaky ReLU), rescaled, mixed with the input."""
    x = grey[None]
    for width in (4, 1):
        kernels = rng.normal(0, 1, (width, x.shape[0], 3, 3)).astype(np.float32)
        y = np.stack([sum(ndimage.convolve(x[c], kernels[o, c], mode="nearest") for c in range(x.shape[0]))
                      for o in range(width)])
        x = np.where(y > 0, y, 0.2 * y)
    out = x[0]
    lo, hi = np.percentile(out, [1, 99])
    out = np.clip((out - lo) / max(hi - lo, 1e-6), 0, 1)
    alpha = rng.uniform(0.3, 1.0)
    return alpha * out + (1 - alpha) * grey


def strong(grey: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Another sequence: a monotone curve (half the time inverted inside the head) or RandConv."""
    head = head_of(grey)
    if rng.random() < 0.5:
        curved = monotone_curve(grey, rng)
        if rng.random() < 0.5:
            curved = 1.0 - curved
        out = curved
    else:
        out = rand_conv(grey, rng)
    return np.clip(out * head, 0, 1)  # the background stays dark, as on every real sequence


def paste(grey: np.ndarray, donor: np.ndarray, donor_mask: np.ndarray,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
    """``donor``'s masked tumour pasted into the head of ``grey`` (all float 0-1, same size):
    intensity-matched to the brain around it, soft-edged. None where it does not fit."""
    inside = donor_mask > 0.5
    if inside.sum() < 20:
        return None
    ys, xs = np.nonzero(inside)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    k = int(rng.integers(8))
    patch = dihedral(donor[y0:y1, x0:x1], k)
    pmask = dihedral(donor_mask[y0:y1, x0:x1], k)
    h, w = patch.shape
    head = head_of(grey) > 0.5
    eroded = ndimage.binary_erosion(head, iterations=max(h, w) // 2 + 2)
    spots = np.argwhere(eroded)
    if len(spots) == 0:
        return None
    cy, cx = spots[rng.integers(len(spots))]
    ty, tx = int(cy - h // 2), int(cx - w // 2)
    if ty < 0 or tx < 0 or ty + h > grey.shape[0] or tx + w > grey.shape[1]:
        return None
    donor_head = head_of(donor) > 0.5
    donor_brain = donor[donor_head & ~inside]
    here = grey[ty:ty + h, tx:tx + w]
    target_brain = grey[head]
    if donor_brain.size < 50 or target_brain.size < 50:
        return None
    # the tumour keeps its contrast to the brain around it, in this image's brightness
    ratio = np.median(target_brain) / max(float(np.median(donor_brain)), 1e-3)
    alpha = ndimage.gaussian_filter((pmask > 0.5).astype(np.float32), 1.5) * (pmask > 0.02)
    out = grey.copy()
    out[ty:ty + h, tx:tx + w] = np.clip(alpha * patch * ratio + (1 - alpha) * here, 0, 1)
    mask = np.zeros_like(grey)
    mask[ty:ty + h, tx:tx + w] = (pmask > 0.5).astype(np.float32)
    return out, mask


def jpeg(grey: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Half the time: re-encoded as JPEG at quality 30-90 (how many archives store slices)."""
    img = Image.fromarray(np.clip(grey * 255 + 0.5, 0, 255).astype(np.uint8))
    if rng.random() < 0.5:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=int(rng.integers(30, 90)))
        img = Image.open(buf)
        img.load()
    return np.asarray(img.convert("L"))


def make_view(family: str, pixels: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
              donor: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, bool]:
    """A view of model input ``pixels`` (uint8 [S, S, 3]) and its mask ([S, S] 0-1): the view's pixels,
    its mask and whether a tumour was pasted in."""
    grey = pixels[..., 0].astype(np.float32) / 255.0
    pasted = False
    if family == "as read":
        return pixels, mask, False
    if family == "paste" and donor is not None:
        done = paste(grey, donor[0].astype(np.float32) / 255.0, donor[1], rng)
        if done is not None:
            (grey, mask), pasted = done, True
    grey, mask = geometry(grey, mask, rng)
    if family in ("mild", "paste"):
        grey = mild(grey, rng)
    elif family == "strong":
        grey = strong(grey, rng)
    out = jpeg(grey, rng) if family != "geometry" else np.clip(grey * 255 + 0.5, 0, 255).astype(np.uint8)
    return np.repeat(out[:, :, None], 3, axis=2), mask, pasted


def grid_of(mask: np.ndarray, grid: int) -> np.ndarray:
    """Share of each cell of a ``grid`` x ``grid`` map inside the mask."""
    return np.asarray(Image.fromarray(mask.astype(np.float32)).resize((grid, grid), Image.BOX), np.float32)
