"""Optical flow, warping, reliability masks and the temporal-error measure (numpy + OpenCV only).

Convention, everywhere in nst_keras.video: a flow is float32 [H, W, 2] holding (dx, dy) in pixels,
and `flow_ab = compute_flow(a, b)` is defined on a's pixel grid and points into b:
a(p) ≈ b(p + flow_ab(p)). So `warp(b, flow_ab)` ≈ a, and the previous stylised frame is brought
into frame t's coordinates by `warp(stylised_prev, compute_flow(frame_t, frame_prev))`.
Pixel centres are at integer coordinates (column x, row y).

The masks follow M. Ruder, A. Dosovitskiy, T. Brox, "Artistic style transfer for videos", GCPR 2016
(arXiv:1604.08610, sec. 3.2 and 3.3), and "Artistic style transfer for videos and spherical
images", IJCV 2018; their thresholds come from N. Sundaram, T. Brox, K. Keutzer, "Dense point
trajectories by GPU-accelerated large displacement optical flow", ECCV 2010.
"""
import numpy as np

from ..errors import check_choice

FLOW_PRESETS = ("ultrafast", "fast", "medium")


def _gray_u8(image):
    """An image [H, W, 3] or [H, W] in [0, 1] (or uint8) as contiguous 8-bit grayscale."""
    import cv2

    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3:
        arr = cv2.cvtColor(np.ascontiguousarray(arr[:, :, :3]), cv2.COLOR_RGB2GRAY)
    if arr.ndim != 2:
        raise ValueError(f"expected an image [H, W, 3] or [H, W], got shape {np.shape(image)}")
    return np.ascontiguousarray(arr)


def compute_flow(a, b, preset="medium"):
    """Dense optical flow from image a to image b (OpenCV's DIS, Kroeger et al. 2016), float32
    [H, W, 2] on a's grid with a(p) ≈ b(p + flow(p)). `preset` is one of FLOW_PRESETS."""
    import cv2

    check_choice("flow preset", preset, FLOW_PRESETS)
    ga, gb = _gray_u8(a), _gray_u8(b)
    if ga.shape != gb.shape:
        raise ValueError(f"images differ in size: {ga.shape} and {gb.shape}")
    code = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
            "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}[preset]
    flow = cv2.DISOpticalFlow_create(code).calc(ga, gb, None)
    return np.asarray(flow, np.float32)


def _sample_grid(flow):
    """Absolute sampling coordinates (x + dx, y + dy) as two float32 maps."""
    flow = np.asarray(flow, np.float32)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError(f"a flow is [H, W, 2], got shape {flow.shape}")
    h, w = flow.shape[:2]
    xs = np.arange(w, dtype=np.float32)[None, :] + flow[:, :, 0]
    ys = np.arange(h, dtype=np.float32)[:, None] + flow[:, :, 1]
    return np.ascontiguousarray(xs), np.ascontiguousarray(ys)


def warp(image, flow):
    """out(p) = image(p + flow(p)): bilinear (cv2.remap, INTER_LINEAR, BORDER_REPLICATE), same
    shape and dtype as image ([H, W, C] or [H, W]). OpenCV interpolates at 1/32-pixel steps."""
    import cv2

    arr = np.asarray(image)
    if arr.shape[:2] != np.shape(flow)[:2]:
        raise ValueError(f"image {arr.shape} and flow {np.shape(flow)} differ in size")
    xs, ys = _sample_grid(flow)
    work = arr if arr.dtype in (np.float32, np.float64, np.uint8, np.uint16) else arr.astype(np.float32)

    def remap(plane):
        return cv2.remap(np.ascontiguousarray(plane), xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    if work.ndim == 2 or work.shape[2] <= 4:
        out = remap(work)
        if work.ndim == 3 and out.ndim == 2:  # OpenCV drops a single channel axis
            out = out[:, :, None]
    else:
        out = np.stack([remap(work[:, :, c]) for c in range(work.shape[2])], axis=-1)
    return out.astype(arr.dtype, copy=False)


def out_of_frame(flow):
    """[H, W] bool: True where p + flow(p) falls outside the image (outside [0, W-1] x [0, H-1])."""
    xs, ys = _sample_grid(flow)
    h, w = xs.shape
    return (xs < 0) | (xs > w - 1) | (ys < 0) | (ys > h - 1)


def disocclusion(flow, flow_back):
    """[H, W] bool: Ruder et al.'s forward-backward consistency check (2016, eq. 6).

    flow = ŵ, from frame t to the earlier frame s (on t's grid); flow_back, from s to t, is
    warped into t's grid, w̃(p) = flow_back(p + ŵ(p)). A pixel is disoccluded where
    |w̃ + ŵ|² > 0.01 (|w̃|² + |ŵ|²) + 0.5."""
    flow = np.asarray(flow, np.float32)
    w_tilde = warp(np.asarray(flow_back, np.float32), flow)
    lhs = np.sum((w_tilde + flow) ** 2, axis=-1)
    rhs = 0.01 * (np.sum(w_tilde ** 2, axis=-1) + np.sum(flow ** 2, axis=-1)) + 0.5
    return lhs > rhs


def motion_boundary(flow):
    """[H, W] bool: Ruder et al.'s motion-boundary test (2016, eq. 7) on ŵ = flow = (u, v):
    |∇u|² + |∇v|² > 0.01 |ŵ|² + 0.002, with central differences (one-sided at the border)."""
    flow = np.asarray(flow, np.float32)
    grad = np.zeros(flow.shape[:2], np.float32)
    for c in range(2):
        for axis in range(2):
            if flow.shape[axis] > 1:
                grad += np.gradient(flow[:, :, c], axis=axis) ** 2
    return grad > 0.01 * np.sum(flow ** 2, axis=-1) + 0.002


def reliability(flow, flow_back):
    """Ruder et al.'s per-pixel weight c of the temporal loss, float32 [H, W] in {0, 1}, on the grid
    of the frame t that `flow` is defined on.

    flow: from frame t to the earlier frame s (the flow used to warp s's result into t);
    flow_back: from s to t. c = 0 where the consistency check finds a disocclusion
    (`disocclusion`), at motion boundaries (`motion_boundary`) and where p + flow(p) leaves the
    frame (`out_of_frame`); 1 elsewhere. Ruder, Dosovitskiy & Brox 2016, sec. 3.2."""
    flow = np.asarray(flow, np.float32)
    if np.shape(flow_back) != flow.shape:
        raise ValueError(f"flow {flow.shape} and flow_back {np.shape(flow_back)} differ in shape")
    bad = disocclusion(flow, flow_back) | motion_boundary(flow) | out_of_frame(flow)
    return (~bad).astype(np.float32)


def long_term_weights(masks):
    """Ruder et al.'s long-term weights (2016, sec. 3.3): masks = {j: c_(t-j, t)} for offsets j
    (e.g. {1: c1, 2: c2, 4: c4}); returns {j: max(c_j - Σ_{k < j} c_k, 0)} as float32, so that
    each pixel is constrained only by the nearest earlier frame in which it is reliable."""
    out, total = {}, None
    for j in sorted(masks):
        c = np.asarray(masks[j], np.float32)
        out[j] = c.copy() if total is None else np.maximum(c - total, 0.0).astype(np.float32)
        total = c.copy() if total is None else total + c
    return out


def temporal_errors(outputs, flows, masks=None):
    """Per t >= 1: the mean absolute difference between outputs[t] and outputs[t-1] warped into t
    by flows[t] (flow from frame t to t-1), over the pixels where masks[t] is set (all pixels
    when masks or masks[t] is None), averaged over channels, in the images' units (0-1).
    A frame with an empty mask gives nan. flows[0] and masks[0] are not used."""
    outputs = list(outputs)
    if len(flows) < len(outputs) or (masks is not None and len(masks) < len(outputs)):
        raise ValueError(f"{len(outputs)} outputs need as many flows and masks")
    errors = []
    for t in range(1, len(outputs)):
        cur = np.asarray(outputs[t], np.float32)
        diff = np.abs(cur - warp(np.asarray(outputs[t - 1], np.float32), flows[t]))
        if diff.ndim == 3:
            diff = diff.mean(axis=-1)
        mask = None if masks is None or masks[t] is None else np.asarray(masks[t]) > 0.5
        if mask is None:
            errors.append(float(diff.mean()))
        else:
            errors.append(float(diff[mask].mean()) if mask.any() else float("nan"))
    return errors


def temporal_error(outputs, flows, masks=None):
    """The issue's temporal error: the mean over t >= 1 of `temporal_errors` (frames with an empty
    mask are left out; nan when no frame counts, e.g. a single frame)."""
    errors = [e for e in temporal_errors(outputs, flows, masks) if np.isfinite(e)]
    return float(np.mean(errors)) if errors else float("nan")
