"""Make samples/clip_coffee_pan.mp4: a virtual camera panning and zooming across content_coffee.jpg.

The motion is known exactly (nst_keras.video.synthetic.camera_clip), so benchmarks/bench_video.py
measures temporal error against the true flow on this very clip (CLIP holds its parameters).

Usage:  python samples/make_clip.py        Needs: nst_keras[video]
"""
import os
import sys
from fractions import Fraction

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

# 16 frames of 256x192 at 8 fps (2 s); boxes (x, y, width) in the 512x341 photo's pixels.
CLIP = {"source": "content_coffee.jpg", "frames": 16, "shape": (192, 256), "fps": Fraction(8),
        "start": (40.0, 40.0, 360.0), "end": (120.0, 70.0, 300.0)}
NAME = "clip_coffee_pan.mp4"


def clip_frames():
    """(frames, exact flows, masks) of the clip, before encoding."""
    from nst_keras.image import load_image
    from nst_keras.video.synthetic import camera_clip

    source = load_image(os.path.join(HERE, CLIP["source"]), "clip source")
    return camera_clip(source, CLIP["frames"], CLIP["shape"], CLIP["start"], CLIP["end"])


def main():
    import tempfile

    from nst_keras.video import io

    frames, _, _ = clip_frames()
    with tempfile.TemporaryDirectory() as tmp:
        paths = [io.write_frame(tmp, i + 1, frame) for i, frame in enumerate(frames)]
        info = io.encode_video(paths, os.path.join(HERE, NAME), CLIP["fps"], crf=20)
    print(f"wrote {NAME}: {info}")


if __name__ == "__main__":
    main()
