"""stylize_frames(): a clip stylised frame by frame, each frame starting from the earlier result
warped by optical flow and held to it by the temporal loss (Ruder, Dosovitskiy & Brox 2016,
"Artistic style transfer for videos"; 2018, "Artistic style transfer for videos and spherical images").

Frame 0 is an ordinary Gatys run (coarse to fine, config.iterations). Frame t > 0 starts from
frame t-1's result warped into frame t (pixels whose flow is unreliable start from the content) and
runs video.frame_iterations at the output size with the temporal term
weight * sum_j mean(c_j (x - w_j)^2), w_j the result of frame t-j warped into frame t and c_j its
reliability (flow.reliability), made long-term by flow.long_term_weights. Flow is computed between
the input frames at the output size, in both directions.
"""
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from ..gatys.config import GatysConfig
from ..gatys.evaluator import Temporal
from ..gatys.pipeline import stylize
from ..image import check_image, resize_to, size_for_long_side
from . import flow as flowlib
from .config import VideoConfig  # noqa: F401  (re-exported)


@dataclass
class FrameResult:
    """One finished frame, as stylize_frames yields it."""

    index: int              # position in the frame sequence, from 0
    image: np.ndarray       # float32 [H, W, 3] in [0, 1]: the frame as saved
    working: np.ndarray     # the optimised image before colours are restored (what later frames warp)
    metadata: dict          # stylize's metadata plus the frame's: start, offsets, reliable, flow_seconds
    seconds: float          # wall time of the frame, flow included
    stop_reason: str        # stylize's: 'completed', or 'callback' / 'non-finite loss' (the sequence ends)


@dataclass
class VideoProgress:
    """One optimiser iteration of one frame, handed to the callback."""

    frame: int              # index of the frame in progress, from 0
    frames: int             # number of frames, or None when the iterable has no length
    progress: object        # the frame's progress.GatysProgress


def stylize_frames(frames, style, config=None, video=None, callback=None, extractor=None, notify=None,
                   finished=None):
    """Stylise a sequence of frames with temporal consistency; yields a FrameResult per frame.

    Args:
        frames: any iterable of float32 [H, W, 3] images in [0, 1], all of one shape.
        style: a style image or a list of them (as stylize()).
        config: a GatysConfig (every option applies to every frame; config.size is the frames'
            long side, config.iterations the first frame's iterations).
        video: a VideoConfig (defaults if None).
        callback: called with a VideoProgress after every iteration; returning True stops the run
            (the frame in progress is yielded with stop_reason 'callback' and the sequence ends).
        extractor: a FeatureExtractor to reuse (built once from config if None).
        notify: one-line messages (stylize's).
        finished: {index: working image or None} of frames already done by an earlier run (resuming):
            those frames are not stylised again; the results of the last ones before the first frame
            to do (back to the largest offset) start and constrain it, older ones may be None.

    Raises:
        UserError: bad options, frames of different shapes, or a resume without the results it needs.
    """
    from ..models import build_extractor, resolve_precision

    config = (config or GatysConfig()).validate()
    video = (video or VideoConfig()).validate()
    finished = dict(finished or {})
    total = len(frames) if hasattr(frames, "__len__") else None
    notify = _once(notify)  # every frame's stylize() would repeat its notices
    if extractor is None:  # one network for every frame
        extractor = build_extractor(config.model, config.weights, list(config.content_layers) + list(config.style_layers),
                                    seed=config.seed, notify=notify, pooling=config.pooling,
                                    precision=resolve_precision(config.precision, notify))
    later = config.replace(iterations=video.frame_iterations)
    past = deque(maxlen=max(video.long_term))  # (frame at output size, working result), newest last
    shape = None
    for index, frame in enumerate(frames):
        frame = check_image(frame, f"frame {index}")
        if shape is None:
            shape = frame.shape
        elif frame.shape != shape:
            raise UserError(f"frame {index} is {frame.shape[1]}x{frame.shape[0]} but frame 0 is {shape[1]}x{shape[0]}; "
                            "accepted: frames of one size")
        if index in finished:
            if finished[index] is not None:
                past.append((resize_to(frame, size_for_long_side(frame.shape, config.size)),
                             np.asarray(finished[index], np.float32)))
            continue
        small = resize_to(frame, size_for_long_side(frame.shape, config.size))
        _check_resume(index, finished, video, past)
        start = time.perf_counter()
        frame_callback = None if callback is None else (
            lambda progress, i=index: callback(VideoProgress(i, total, progress)))
        if video.independent or not past:
            result = stylize(small, style, config, frame_callback, extractor, notify)
            extra = {"start": config.init, "offsets": [], "reliable": None, "flow_seconds": 0.0}
        else:
            flow_start = time.perf_counter()
            init, mask, temporal, offsets = _guides(small, past, video)
            flow_seconds = time.perf_counter() - flow_start
            result = stylize(small, style, later, frame_callback, extractor, notify, init=init, init_mask=mask,
                             temporal=temporal)
            extra = {"start": "warped", "offsets": offsets, "reliable": float(np.mean(mask)),
                     "flow_seconds": flow_seconds}
        seconds = time.perf_counter() - start
        metadata = dict(result.metadata, frame=index, video=video.to_dict(), **extra)
        yield FrameResult(index, result.image, result.working, metadata, seconds, result.stop_reason)
        if result.stop_reason != "completed":
            return
        past.append((small, result.working))


def _guides(small, past, video):
    """Start image, its mask, the Temporal term and the offsets used, for the frame `small`."""
    masks, warped = {}, {}
    for j in video.long_term:
        if j > len(past):
            break
        earlier, result = past[-j]
        to_earlier = flowlib.compute_flow(small, earlier, video.flow_preset)
        from_earlier = flowlib.compute_flow(earlier, small, video.flow_preset)
        masks[j] = flowlib.reliability(to_earlier, from_earlier)
        warped[j] = flowlib.warp(result, to_earlier)
    weights = flowlib.long_term_weights(masks)
    offsets = sorted(warped)
    temporal = Temporal(np.stack([warped[j] for j in offsets]).astype(np.float32),
                        np.stack([weights[j] for j in offsets]).astype(np.float32), video.temporal_weight)
    return warped[1], masks[1].astype(np.float32), temporal, offsets


def _check_resume(index, finished, video, past):
    """A resumed run must have the results the next frame warps (the frames just before it)."""
    if index and finished and len(past) < min(index, max(video.long_term)):
        raise UserError(f"resuming at frame {index} needs the results of frames {max(0, index - max(video.long_term))}"
                        f"-{index - 1}; accepted: finished results of the frames just before the first one to do")


def _once(notify):
    """A notify that passes each distinct line once."""
    seen = set()

    def say(message):
        if notify is not None and message not in seen:
            seen.add(message)
            notify(message)
    return say
