"""Video: temporal error, losses, cost per frame and peak memory of temporally consistent frames
against independent ones; writes the 'video' section of BENCHMARKS.md.

    python benchmarks/bench_video.py [--frames 12] [--pan-frames 8] [--pan-size 128]

Two clips with exactly known motion: a whole-pixel pan across content_chelsea.jpg (pan_clip), and
the sample clip samples/clip_coffee_pan.mp4 (pan and zoom, decoded from the mp4 as a user's clip
would be; its true flow comes from samples/make_clip.py's parameters). Temporal error: the mean
absolute difference between consecutive output frames after warping the earlier by the true motion,
over pixels visible in both (flow.temporal_error). Every variant runs in its own process (peak
memory is that process's maximum resident set). VGG16 with the bundled HED weights (offline),
the default Gatys options, the style samples/style_swirling_night.jpg.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _report import cpu_model, log  # noqa: E402
sys.path.insert(0, os.path.join(ROOT, "samples"))
STYLE = os.path.join(ROOT, "samples", "style_swirling_night.jpg")


def clip(name, frames, pan_size, size):
    """(frames to stylise, true flows, masks, long side to stylise at)."""
    if name == "pan":
        from nst_keras.image import load_image
        from nst_keras.video.synthetic import pan_clip

        source = load_image(os.path.join(ROOT, "samples", "content_chelsea.jpg"), "pan source")
        shape = (pan_size * 3 // 4, pan_size)
        images, flows, masks = pan_clip(source, frames, shape, step=(3, 1))
        return images, flows, masks, pan_size
    from make_clip import NAME, clip_frames
    from nst_keras.video import io

    _, flows, masks = clip_frames()
    images = list(io.open_frames(os.path.join(ROOT, "samples", NAME), frames=frames))
    return images, flows[:frames], masks[:frames], size


def run_one(name, independent, frames, pan_size, size, save=None):
    """One variant in this process; prints its figures as JSON."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from nst_keras.gatys.config import GatysConfig
    from nst_keras.image import load_image
    from nst_keras.video.config import VideoConfig
    from nst_keras.video.flow import temporal_error, temporal_errors
    from nst_keras.video.temporal import stylize_frames

    from nst_keras.image import resize_to

    images, flows, masks, size = clip(name, frames, pan_size, size)
    config = GatysConfig(size=size, model="vgg16", weights="hed")
    video = VideoConfig(independent=independent)
    style = load_image(STYLE, "style image", long_side=size)
    outputs, records = [], []  # at the clip's size (the true flow's), for the temporal error
    started = time.perf_counter()
    for result in stylize_frames(images, style, config, video):
        outputs.append(resize_to(result.image, images[0].shape[:2]))
        terms = result.metadata["final_terms"]
        records.append({"seconds": result.seconds, "flow_seconds": result.metadata["flow_seconds"],
                        "content": terms["content"], "style": terms["style"]})
        log(f"{name} {'independent' if independent else 'temporal'} frame {result.index + 1}: {result.seconds:.1f} s")
    later = records[1:]
    if save:
        np.save(save, np.stack(outputs))
    print(json.dumps({
        "clip": name, "independent": independent, "frames": len(outputs), "shape": list(result.image.shape[:2]),
        "seconds": time.perf_counter() - started,
        "temporal_error": temporal_error(outputs, flows, masks),
        "temporal_errors": [None if e is None or not np.isfinite(e) else float(e)
                            for e in temporal_errors(outputs, flows, masks)],
        "first_frame_seconds": records[0]["seconds"],
        "median_frame_seconds": float(np.median([r["seconds"] for r in later])),
        "median_flow_seconds": float(np.median([r["flow_seconds"] for r in later])),
        "content": float(np.mean([r["content"] for r in later])),
        "style": float(np.mean([r["style"] for r in later])),
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "iterations": {"first": config.iterations, "later": config.iterations if independent
                       else video.frame_iterations}}))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=12, help="frames of the sample clip")
    p.add_argument("--pan-frames", type=int, default=8)
    p.add_argument("--pan-size", type=int, default=128)
    p.add_argument("--size", type=int, default=256, help="long side the sample clip is stylised at")
    p.add_argument("--one", nargs=2, metavar=("CLIP", "MODE"), help=argparse.SUPPRESS)
    p.add_argument("--save", help=argparse.SUPPRESS)
    p.add_argument("--figures", default=os.path.join(ROOT, "docs", "video"),
                   help="where the sample clip's side-by-side GIF and frame strip go")
    args = p.parse_args()
    if args.one:
        name, mode = args.one
        frames = args.pan_frames if name == "pan" else args.frames
        return run_one(name, mode == "independent", frames, args.pan_size, args.size, args.save)
    command = "python benchmarks/bench_video.py " + " ".join(sys.argv[1:])
    import tempfile

    results = {}
    tmp = tempfile.mkdtemp()
    for name in ("pan", "sample"):
        for mode in ("temporal", "independent"):  # side by side, one after the other
            log(f"{name} {mode}")
            out = subprocess.run([sys.executable, __file__, "--one", name, mode, "--frames", str(args.frames),
                                  "--pan-frames", str(args.pan_frames), "--pan-size", str(args.pan_size),
                                  "--size", str(args.size), "--save", os.path.join(tmp, f"{name}-{mode}.npy")],
                                 check=True, stdout=subprocess.PIPE, text=True,
                                 env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")).stdout
            results[name, mode] = json.loads(out.strip().splitlines()[-1])
    figures(np.load(os.path.join(tmp, "sample-temporal.npy")), np.load(os.path.join(tmp, "sample-independent.npy")),
            args.figures)
    write(results, command)


def figures(temporal, independent, directory):
    """side_by_side.gif (temporal | independent, at the clip's frame rate) and strip.jpg (four
    consecutive frames of each, one row each)."""
    from PIL import Image

    from make_clip import CLIP

    os.makedirs(directory, exist_ok=True)
    u8 = lambda a: (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)  # noqa: E731
    gap = np.ones((temporal.shape[1], 6, 3), np.float32)
    pairs = [Image.fromarray(u8(np.concatenate([t, gap, i], 1))) for t, i in zip(temporal, independent)]
    pairs[0].save(os.path.join(directory, "side_by_side.gif"), save_all=True, append_images=pairs[1:],
                  duration=int(1000 / float(CLIP["fps"])), loop=0)
    rows = [np.concatenate(sum(([f, gap] for f in clip[4:8]), [])[:-1], 1) for clip in (temporal, independent)]
    band = np.ones((6, rows[0].shape[1], 3), np.float32)
    strip = Image.fromarray(u8(np.concatenate([rows[0], band, rows[1]], 0)))
    strip.save(os.path.join(directory, "strip.jpg"), quality=90)


def write(results, command):
    from _report import write_section
    from nst_keras.video.config import VideoConfig

    rows = []
    for name, label in (("pan", "whole-pixel pan, chelsea"), ("sample", "samples/clip_coffee_pan.mp4")):
        t, i = results[name, "temporal"], results[name, "independent"]
        rows.append(f"| {label} ({t['frames']} frames, {t['shape'][1]}x{t['shape'][0]}) | "
                    f"{t['temporal_error']:.4f} | {i['temporal_error']:.4f} | "
                    f"**{t['temporal_error'] / i['temporal_error']:.2f}x** | "
                    f"{t['content'] / i['content']:.2f}x | {t['style'] / i['style']:.2f}x | "
                    f"{t['median_frame_seconds']:.1f} s / {i['median_frame_seconds']:.1f} s | "
                    f"{t['median_flow_seconds'] * 1000:.0f} ms | {t['peak_mib']:.0f} / {i['peak_mib']:.0f} MiB |")
    raw = {f"{k[0]}-{k[1]}": v for k, v in results.items()}
    text = f"""## Video: temporal consistency against independent frames (issue 20)

`{command}` on "{cpu_model()}" (2 cores, no GPU), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.
VGG16 with the bundled HED weights, default Gatys options, style `style_swirling_night.jpg`;
temporal: first frame {results['sample', 'temporal']['iterations']['first']} iterations, later frames
{results['sample', 'temporal']['iterations']['later']} from the warped previous result with the temporal term
(weight {VideoConfig().temporal_weight:g}, offset 1); independent: every frame {results['sample', 'independent']['iterations']['first']}
iterations from its content. Temporal error: mean |out_t - warp(out_t-1)| over pixels visible in
both, by the true motion, in 0-1 units. Losses: mean content and style terms of frames 2.., temporal
over independent. Seconds: median per frame after the first (flow included). Peak: the process's
maximum resident set.

| clip | temporal error, temporal | independent | ratio (goal <= 0.5x) | content | style | s/frame temporal / independent | flow per frame | peak temporal / independent |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

<details><summary>raw figures</summary>

```json
{json.dumps(raw, indent=1)}
```
</details>"""
    write_section("video", text)
    log("wrote the video section of BENCHMARKS.md")


if __name__ == "__main__":
    main()
