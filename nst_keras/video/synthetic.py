"""Clips with exactly known motion: a virtual camera panning and zooming over a still image.

Each function returns (frames, flows, masks): frames are float32 [h, w, 3] in [0, 1]; flows[t]
(t >= 1) is the exact flow from frame t to frame t-1 in nst_keras.video.flow's convention
(frame_t(p) ≈ frame_{t-1}(p + flows[t](p)), so warp(frames[t-1], flows[t]) ≈ frames[t]);
masks[t] is True where p + flows[t](p) lies inside frame t-1 (a still scene has no other
occlusion). flows[0] and masks[0] are None.
"""
import numpy as np

from .flow import out_of_frame


def _as_source(source):
    src = np.asarray(source)
    src = src.astype(np.float32) / 255.0 if src.dtype == np.uint8 else src.astype(np.float32)
    if src.ndim == 2:
        src = np.repeat(src[:, :, None], 3, axis=2)
    if src.ndim != 3:
        raise ValueError(f"expected a source image [H, W, 3], got shape {np.shape(source)}")
    return np.ascontiguousarray(src)


def _check(frames, shape):
    if int(frames) < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    h, w = (int(v) for v in shape)
    if h < 1 or w < 1:
        raise ValueError(f"shape must be (height, width) >= 1, got {shape}")
    return int(frames), h, w


def camera_boxes(frames, shape, start, end):
    """The crop boxes (x, y, width) of `camera_clip`, float64 [frames, 3]: x and y linear in t,
    width geometric in t (a constant zoom factor per frame)."""
    frames, h, w = _check(frames, shape)
    (x0, y0, w0), (x1, y1, w1) = (tuple(float(v) for v in box) for box in (start, end))
    if w0 <= 0 or w1 <= 0:
        raise ValueError(f"box widths must be positive, got {w0} and {w1}")
    s = np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)
    return np.stack([x0 + (x1 - x0) * s, y0 + (y1 - y0) * s, w0 * (w1 / w0) ** s], axis=1)


def _box_to_source(box, h, w):
    """Source coordinates (pixel centres at integers) of frame pixel centres: per axis, an
    offset and a scale with source = offset + scale * frame."""
    x, y, width = box
    scale = width / w  # the same both ways: the box's height is width * h / w
    return x + 0.5 * scale - 0.5, y + 0.5 * scale - 0.5, scale


def camera_clip(source, frames, shape, start, end):
    """A virtual camera moving over `source` (float32 [H, W, 3] in [0, 1]; uint8 is scaled).

    start, end: crop boxes (x, y, width) in source pixels, (0, 0) being the top-left corner of
    the image and a pixel one unit wide; the box height is width * h / w for shape = (h, w).
    Box t interpolates x and y linearly and the width geometrically (constant zoom per frame).
    Frame t is box t resampled to `shape`, bilinear (cv2.remap, BORDER_REPLICATE) from the same
    coordinate map that gives the exact flows. Boxes must lie inside the source.
    Returns (frames, flows, masks) as described in the module docstring."""
    import cv2

    src = _as_source(source)
    n, h, w = _check(frames, shape)
    boxes = camera_boxes(n, (h, w), start, end)
    eps = 1e-6
    for x, y, width in boxes:
        height = width * h / w
        if x < -eps or y < -eps or x + width > src.shape[1] + eps or y + height > src.shape[0] + eps:
            raise ValueError(f"box (x={x:g}, y={y:g}, width={width:g}, height={height:g}) leaves the "
                             f"{src.shape[1]}x{src.shape[0]} source")
    us = np.arange(w, dtype=np.float64)
    vs = np.arange(h, dtype=np.float64)
    out_frames, flows, masks = [], [None], [None]
    prev = None
    for t, box in enumerate(boxes):
        ox, oy, scale = _box_to_source(box, h, w)
        map_x = np.broadcast_to((ox + scale * us)[None, :], (h, w)).astype(np.float32)
        map_y = np.broadcast_to((oy + scale * vs)[:, None], (h, w)).astype(np.float32)
        frame = cv2.remap(src, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out_frames.append(np.clip(frame, 0.0, 1.0).astype(np.float32))
        if t >= 1:
            pox, poy, pscale = prev
            # frame t pixel -> source -> frame t-1 pixel, minus the pixel itself
            fx = (ox + scale * us - pox) / pscale - us
            fy = (oy + scale * vs - poy) / pscale - vs
            flow = np.empty((h, w, 2), np.float32)
            flow[:, :, 0] = fx[None, :]
            flow[:, :, 1] = fy[:, None]
            flows.append(flow)
            masks.append(~out_of_frame(flow))
        prev = (ox, oy, scale)
    return out_frames, flows, masks


def pan_clip(source, frames, shape, step=(1, 0), origin=None):
    """A camera translating by whole pixels: frame t is the crop of `source` at
    origin + t * step, of size shape = (h, w); step = (dx, dy) per frame.

    The content moves by -step in the image, so the exact flow from frame t to t-1 is the
    constant +step (frame_t(p) = frame_{t-1}(p + step)). origin (x, y) defaults to the corner
    that keeps every crop inside the source. Returns (frames, flows, masks)."""
    src = _as_source(source)
    n, h, w = _check(frames, shape)
    dx, dy = step
    if int(dx) != dx or int(dy) != dy:
        raise ValueError(f"pan_clip steps are whole pixels, got {step}; camera_clip takes any motion")
    dx, dy = int(dx), int(dy)
    if origin is None:
        origin = (max(0, -dx * (n - 1)), max(0, -dy * (n - 1)))
    x0, y0 = (int(v) for v in origin)
    xs = [x0 + t * dx for t in range(n)]
    ys = [y0 + t * dy for t in range(n)]
    if min(xs) < 0 or min(ys) < 0 or max(xs) + w > src.shape[1] or max(ys) + h > src.shape[0]:
        raise ValueError(f"a {w}x{h} pan from {(x0, y0)} by {(dx, dy)} over {n} frames leaves the "
                         f"{src.shape[1]}x{src.shape[0]} source")
    out_frames = [src[y:y + h, x:x + w].copy() for x, y in zip(xs, ys)]
    flow = np.empty((h, w, 2), np.float32)
    flow[:, :, 0], flow[:, :, 1] = dx, dy
    mask = ~out_of_frame(flow)
    flows = [None] + [flow.copy() for _ in range(n - 1)]
    masks = [None] + [mask.copy() for _ in range(n - 1)]
    return out_frames, flows, masks
