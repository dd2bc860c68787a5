"""Load, resize and save images. The one image contract: float32 arrays [H, W, 3] in [0, 1]."""
import json
import os
import tempfile
import warnings

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from .errors import UserError

# Decompression-bomb guard: PIL raises above twice this many pixels and warns above it;
# both become a UserError. 178 megapixels is PIL's own default.
MAX_IMAGE_PIXELS = 178_956_970
ACCEPTED = "an RGB, grayscale, RGBA, palette, CMYK or 16-bit image file (PNG, JPEG, TIFF, BMP, WebP, ...)"


def _to_rgb(img):
    """Convert any PIL mode to 8-bit RGB; transparency is composited over white."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, "L")
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        peak = 1.0 if arr.max() <= 1.0 else 255.0
        img = Image.fromarray(np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")


def load_image(path, role="image", notify=None, long_side=None):
    """Read an image file as float32 [H, W, 3] in [0, 1], honouring EXIF rotation.

    Args:
        path: the file.
        role: what the image is for, in messages ('content image').
        notify: called with one line when the file holds several frames (an animated GIF, a
            multi-page TIFF): the first is used.
        long_side: the largest long side the caller will resize the image to. A much larger image
            is decoded at a reduced size (JPEG draft mode, else a box-filter reduce by a whole
            factor) that keeps its short side at least twice this, so the input's size does not
            drive memory.

    Raises:
        UserError: the file is missing, unreadable, truncated, not an image, or too large.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise UserError(f"{role} '{path}' does not exist; expected {ACCEPTED}")
    if os.path.isdir(path):
        raise UserError(f"{role} '{path}' is a directory; expected {ACCEPTED}")
    old_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                frames = getattr(img, "n_frames", 1)
                factor = _reduction(img.size, long_side)
                if factor > 1 and img.format == "JPEG":
                    img.draft(img.mode, (img.size[0] // factor, img.size[1] // factor))
                img.load()
                img = ImageOps.exif_transpose(img)
                factor = _reduction(img.size, long_side)  # what the draft left to do
                if factor > 1 and img.mode in ("RGB", "L", "RGBA", "LA", "CMYK", "I", "F"):
                    img = img.reduce(factor)
                rgb = _to_rgb(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(f"{role} '{path}' has more than {MAX_IMAGE_PIXELS} pixels (decompression-bomb guard); "
                        "resize it first") from None
    except UnidentifiedImageError:
        raise UserError(f"{role} '{path}' is not a readable image; expected {ACCEPTED}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"{role} '{path}' cannot be read ({exc}); expected {ACCEPTED}") from None
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit
    if frames > 1 and notify is not None:
        notify(f"{role} '{path}' has {frames} frames; using the first")
    return np.asarray(rgb, dtype=np.float32) / 255.0


def _reduction(size, long_side):
    """The whole factor by which an image of `size` (w, h) can be shrunk at decode while its short
    side stays at least twice `long_side` (1: none)."""
    if not long_side:
        return 1
    return max(1, min(size) // (2 * int(long_side)))


def check_image(image, role="image"):
    """An API image as float32 [H, W, 3] in [0, 1]; PIL images are converted.

    Raises:
        UserError: a batch axis, a wrong channel count, integer or 0-255 values, NaNs.
    """
    if isinstance(image, Image.Image):
        return np.asarray(_to_rgb(image), dtype=np.float32) / 255.0
    array = np.asarray(image)
    if array.ndim == 4 and array.shape[0] == 1:
        raise UserError(f"{role} has a batch axis; accepted: one image [H, W, 3] (use image[0]). "
                        f"Received: shape={array.shape}")
    if array.ndim != 3 or array.shape[-1] != 3:
        raise UserError(f"{role} must be an RGB image [H, W, 3]; accepted: float32 [H, W, 3] in [0, 1] "
                        f"(nst_keras.load_image reads files). Received: shape={array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        raise UserError(f"{role} has integer values; accepted: floats in [0, 1] (divide uint8 images by 255). "
                        f"Received: dtype={array.dtype}")
    if not np.all(np.isfinite(array)):
        raise UserError(f"{role} contains NaN or infinite values; accepted: floats in [0, 1]")
    low, high = float(array.min()), float(array.max())
    if low < -1e-3 or high > 1 + 1e-3:
        hint = " (divide 0-255 images by 255)" if high > 1.5 else ""
        raise UserError(f"{role} has values outside [0, 1]{hint}; accepted: floats in [0, 1]. "
                        f"Received: min={low:.4g}, max={high:.4g}")
    return np.clip(array, 0.0, 1.0).astype(np.float32, copy=False)


def size_for_long_side(shape, long_side):
    """(h, w) with the longer side equal to `long_side`, keeping the aspect ratio."""
    h, w = shape[:2]
    scale = long_side / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def resize_to(image, size):
    """Resize a [H, W, 3] image to size (h, w) with a Lanczos (down) or bicubic (up) filter."""
    h, w = size
    if image.shape[:2] == (h, w):
        return image.astype(np.float32, copy=False)
    down = h * w < image.shape[0] * image.shape[1]
    channels = []
    for c in range(3):  # 32-bit float planes keep full precision through PIL
        plane = Image.fromarray(np.ascontiguousarray(image[..., c], dtype=np.float32), "F")
        plane = plane.resize((w, h), Image.Resampling.LANCZOS if down else Image.Resampling.BICUBIC)
        channels.append(np.asarray(plane))
    return np.clip(np.stack(channels, axis=-1), 0.0, 1.0).astype(np.float32)


def fit_long_side(image, long_side):
    """Resize so that the longer side is `long_side` pixels."""
    return resize_to(image, size_for_long_side(image.shape, long_side))


def center_crop(image, size):
    """Crop the largest centred window with the aspect of size (h, w), then resize to it."""
    h, w = size
    ih, iw = image.shape[:2]
    if ih * w > iw * h:  # too tall
        ch, cw = max(1, round(iw * h / w)), iw
    else:
        ch, cw = ih, max(1, round(ih * w / h))
    top, left = (ih - ch) // 2, (iw - cw) // 2
    return resize_to(image[top:top + ch, left:left + cw], size)


def to_uint8(image):
    """[H, W, 3] float in [0, 1] to uint8 with rounding (clips at 255, not 225)."""
    return np.clip(np.asarray(image, dtype=np.float64) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def atomic_write(path, write):
    """Call write(tmp_path), then move the finished file over `path` in one step."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=directory)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; outputs get the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_png(path, image, metadata=None):
    """Write an 8-bit RGB PNG atomically; `metadata` (a dict) goes into a JSON text chunk."""
    info = PngImagePlugin.PngInfo()
    if metadata is not None:
        info.add_text("nst_keras", json.dumps(metadata, sort_keys=True, default=str))
    pil = Image.fromarray(to_uint8(image), "RGB")
    atomic_write(path, lambda tmp: pil.save(tmp, format="PNG", pnginfo=info))


def read_png_metadata(path):
    """The dict stored by save_png, or None."""
    with Image.open(path) as img:
        text = img.text.get("nst_keras") if hasattr(img, "text") else None
    return json.loads(text) if text else None


def save_json(path, data):
    """Write JSON atomically."""
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True, default=str)
            f.write("\n")
    atomic_write(path, write)


def contact_sheet(images, labels=None, columns=4, cell=256):
    """Tile images (each [H, W, 3] in [0, 1]) into one sheet, each scaled to fit a cell."""
    from PIL import ImageDraw

    rows = (len(images) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * cell, rows * (cell + 16)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, img in enumerate(images):
        thumb = Image.fromarray(to_uint8(img))
        thumb.thumbnail((cell, cell))
        x, y = (i % columns) * cell, (i // columns) * (cell + 16)
        sheet.paste(thumb, (x + (cell - thumb.width) // 2, y + (cell - thumb.height) // 2))
        if labels:
            draw.text((x + 4, y + cell + 2), str(labels[i]), fill=(0, 0, 0))
    return np.asarray(sheet, dtype=np.float32) / 255.0
