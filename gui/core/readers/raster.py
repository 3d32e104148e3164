"""JPEG, PNG, BMP, TIFF and GIF through Pillow: the pixels as exported, refused from the header when too large."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from gui.core.display import grey_to_rgb, window_to_uint8
from gui.core.readers.limits import MAX_PIXELS, os_reason
from gui.core.readers.scan import ImageReadError, ModelNeed, Plane, Scan

#: Raster formats handed to Pillow; anything else Pillow could open is refused.
RASTER_FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "GIF")

# Our own limit is checked from the header of every image (thread-safe, unlike catching the
# warning); Pillow's warning between its limit and ours would only be noise.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def open_checked(path: Path) -> Image.Image:
    """Open with Pillow restricted to our formats, refusing oversized images from the header."""
    try:
        img = Image.open(path, formats=RASTER_FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageReadError(path, f"image is above the {MAX_PIXELS:,}-pixel limit ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ImageReadError(path, "the file is damaged or not a supported image") from exc
    except (FileNotFoundError, PermissionError) as exc:
        raise ImageReadError(path, os_reason(exc)) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageReadError(path, f"the image data is truncated or damaged ({exc})") from exc
    w, h = img.size
    if w * h > MAX_PIXELS or w <= 0 or h <= 0:
        img.close()
        raise ImageReadError(path, f"image is {w}x{h} pixels, above the {MAX_PIXELS:,}-pixel limit")
    return img


def _decode_opened(path: Path, img: Image.Image) -> np.ndarray:
    try:
        img.seek(0)
        img.load()
        ImageOps.exif_transpose(img, in_place=True)  # in place: no copy of an upright image
        return pil_to_rgb(img)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageReadError(path, f"the image data is truncated or damaged ({exc})") from exc


def open_raster(path: Path) -> Scan:
    """A raster file as a one-frame scan (a multi-frame GIF or TIFF: its first frame, said in ``info``).
    The header is checked now; the pixels are decoded when first asked for, once: a batch that feeds
    a large JPEG to a model decodes it reduced (:func:`reduced_jpeg`) and never at full size."""
    with open_checked(path) as img:
        fmt = img.format or "image"
        info = {"format": fmt, "size": f"{img.size[0]}x{img.size[1]}", "mode": img.mode}
        if getattr(img, "n_frames", 1) > 1:
            info["frames in file"] = f"{img.n_frames} (first shown)"
        shown = img.size[::-1] if fmt == "JPEG" and img.getexif().get(0x0112, 1) in (5, 6, 7, 8) else img.size
    decoded: list[Plane] = []

    def read(_i: int) -> Plane:
        if not decoded:
            with open_checked(path) as img:
                decoded.append(Plane(rgb=_decode_opened(path, img)))
        return decoded[0]

    reduce = (lambda need: reduced_jpeg(path, need, shown)) if fmt == "JPEG" else None
    return Scan(path, fmt, 1, 0, read, info, reduce=reduce)


#: JPEG's DCT scaling: the decoder can give 1/1, 1/2, 1/4 or 1/8 of the size almost for free.
_JPEG_SCALES = (8, 4, 2)


def reduced_jpeg(path: Path, need: ModelNeed, shown: tuple[int, int]) -> tuple[np.ndarray, float] | None:
    """A JPEG decoded at the smallest DCT scale (1/2, 1/4, 1/8) that still keeps ``need.min_side`` pixels
    across the head's crop, and the scale (full size / this size); None when only the full size keeps
    them (most scans under ~900 px), so those are decoded exactly as before. ``shown`` is the image's
    width and height as displayed (after its EXIF turn), read from the header when it was opened.

    The crop is found on a 1/8 decode first (a fraction of a millisecond) by ``need.crop_side``: the same
    head box and margin as the brain crop (``gui.core.engine.preprocess``), else the whole frame."""
    min_side = need.min_side
    w, h = shown
    if max(w, h) < 2 * min_side:
        return None
    small = _draft_decode(path, 8)
    side = need.crop_side(small) * (w / small.shape[1])
    scale = next((s for s in _JPEG_SCALES if side / s >= min_side), 1)
    if scale == 1:
        return None
    rgb = small if scale == 8 else _draft_decode(path, scale)
    return rgb, w / rgb.shape[1]


def _draft_decode(path: Path, scale: int) -> np.ndarray:
    """The JPEG decoded at 1/``scale`` by the decoder's DCT scaling, EXIF-upright, as RGB."""
    with open_checked(path) as img:
        img.draft(img.mode, (max(1, img.size[0] // scale), max(1, img.size[1] // scale)))
        return _decode_opened(path, img)


def pil_to_rgb(img: Image.Image) -> np.ndarray:
    """Convert any Pillow mode to ``uint8 [H, W, 3]``; high bit depths are windowed min-max."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return grey_to_rgb(window_to_uint8(np.asarray(img, dtype=np.float32)))
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        # Transparent areas become black, the background of an MRI slice.
        rgba = img.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(black, rgba)
    if mode == "L":
        return grey_to_rgb(np.asarray(img, dtype=np.uint8))
    return np.asarray(img if img.mode == "RGB" else img.convert("RGB"), dtype=np.uint8)
