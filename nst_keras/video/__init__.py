"""Video: temporally consistent stylisation of clips and frame folders (Ruder, Dosovitskiy & Brox 2016).

    io.py         frames in (a video file through PyAV, or a folder of images) and out as
                  numbered PNGs, atomically; what is finished (resuming)
    encode.py     numbered PNGs to a video file with the input's audio, atomically
    flow.py       optical flow (OpenCV DIS), warping, Ruder et al.'s reliability masks, long-term
                  weights, the temporal-error measure
    synthetic.py  clips with known camera motion (pan and zoom) and their exact flow
    config.py     VideoConfig
    temporal.py   stylize_frames(): frame by frame with a warped start and the temporal loss

PyAV and OpenCV are the optional extra nst_keras[video].
"""
_EXPORTS = {
    "stylize_frames": "temporal", "FrameResult": "temporal", "VideoProgress": "temporal",
    "VideoConfig": "config",
    "open_frames": "io", "encode_video": "encode",
    "compute_flow": "flow", "warp": "flow", "reliability": "flow", "temporal_error": "flow",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'nst_keras.video' has no attribute {name!r}")
