"""nst-video / scripts/video.py: stylise a clip or a folder of frames without flicker.

Finished frames are kept in a work folder (OUTPUT itself for a frame-folder output, else
OUTPUT + '.frames/') with each frame's optimised image (what the next frame warps) and the run's
options; a re-run with the same options continues after the last finished frame. Ctrl-C keeps every
finished frame and, for a video output, assembles the video from them.
"""
import argparse
import json
import os
import shutil
import sys
from fractions import Fraction

import numpy as np

from ..errors import UserError
from ..gatys.config import GatysConfig
from .common import (Parser, add_common_flags, config_from_args, describe_input, progress_bar, quiet_start, run_main,
                     say, sidecar_path)
from .gatys import add_config_flags

PROG = "nst-video"
# Video frames are stylised at 256 px by default: a frame costs ~0.3 s per iteration there on 2 CPU cores.
DEFAULTS = GatysConfig(size=256)
STATE = ".nst-video"  # inside the work folder: run.json and the frames' optimised images
FOLDER_FPS = 25  # frame rate of a frame folder made into a video, unless --fps says otherwise


def _offsets(text):
    try:
        return tuple(int(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a list of whole numbers; "
                                         "accepted: e.g. 1 or 1,2,4") from None


def _fps(text):
    """A frame rate such as 24, 29.97 or 30000/1001, as a Fraction."""
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise UserError(f"--fps '{text}' is not a frame rate; accepted: a number of frames per second in (0, 1000], "
                        "like 24 or 30000/1001") from None
    if not 0 < value <= 1000:
        raise UserError(f"--fps {text}; accepted: a number of frames per second in (0, 1000], like 24 or 30000/1001")
    return value.limit_denominator(100000)


def build_parser():
    from ..video.config import VideoConfig

    v = VideoConfig()
    p = Parser(prog=PROG, description="Stylise INPUT (a video file or a folder of frames) in the style of STYLE, "
                                      "frame by frame with a warped start and the temporal loss of Ruder et al. "
                                      "(2016), so that the result does not flicker.")
    p.add_argument("input", help="video file (mp4, mov, mkv, webm, ...) or folder of frames")
    p.add_argument("style", nargs="+", help="style image(s); several are blended (see --style-blend-weights)")
    add_common_flags(p, output_help="output video file (.mp4, .mov, .mkv, .webm) or folder for numbered PNG frames "
                                    "(default: %(default)s)")
    p.set_defaults(output="out.mp4")
    add_config_flags(p, DEFAULTS)
    g = p.add_argument_group("frames")
    g.add_argument("--start", type=int, default=0, metavar="N", help="first frame, from 0 (default: %(default)s)")
    g.add_argument("--frames", type=int, default=None, metavar="N", help="at most N frames (default: all)")
    g.add_argument("--every", type=int, default=1, metavar="K",
                   help="every K-th frame; the output's frame rate is the input's / K (default: %(default)s)")
    g.add_argument("--fps", type=_fps, default=None,
                   help="frame rate of a frame-folder input, for a video output (default: %s); a video input keeps "
                        "its own" % FOLDER_FPS)
    g = p.add_argument_group("temporal consistency")
    g.add_argument("--frame-iterations", type=int, default=v.frame_iterations,
                   help="iterations of every frame after the first (which runs --iterations) (default: %(default)s)")
    g.add_argument("--temporal-weight", type=float, default=v.temporal_weight,
                   help="weight of the temporal loss (default: %(default)s)")
    g.add_argument("--long-term", type=_offsets, default=v.long_term, metavar="J,J,...",
                   help="earlier frames held by the temporal loss, as offsets: 1 (the previous frame) or e.g. "
                        "1,2,4 (Ruder et al.'s long-term loss) (default: 1)")
    g.add_argument("--independent", action="store_true",
                   help="stylise every frame on its own (no warped start, no temporal loss), for comparison")
    g.add_argument("--flow-preset", default=v.flow_preset, help="OpenCV DIS preset: ultrafast, fast or medium "
                                                               "(default: %(default)s)")
    g.add_argument("--keep-frames", action="store_true",
                   help="keep the work folder of a video output (its PNG frames) after the video is written")
    g.add_argument("--crf", type=int, default=18, help="x264 / VP9 quality, lower is better (default: %(default)s)")
    return p


def _video_config(args):
    from ..video.config import VideoConfig

    return VideoConfig(args.frame_iterations, args.temporal_weight, tuple(args.long_term), args.independent,
                       args.flow_preset).validate()


def _run(argv):
    args = build_parser().parse_args(argv)
    from ..video.io import require_video_packages

    require_video_packages(PROG)
    quiet_start(args.verbose)
    config = config_from_args(GatysConfig, args)
    video = _video_config(args)
    if config.tile_size and config.size > config.tile_size:
        raise UserError(f"--tile-size {config.tile_size} below --size {config.size}: video frames are not tiled; "
                        "accepted: --tile-size 0 or at least --size")
    if not 0 <= args.crf <= 51:  # io.encode_video's range, checked before any frame is stylised
        raise UserError(f"--crf {args.crf}; accepted: a whole number from 0 to 51")
    from ..image import load_image
    from ..models import validate_layers
    from ..video import io

    kind = io.check_output(args.output, args.input)
    for path in args.style:
        if os.path.abspath(path) == os.path.abspath(args.output):
            raise UserError(f"output '{args.output}' is also an input; accepted: a path that is not an input")
    validate_layers(config.model, list(config.content_layers) + list(config.style_layers))
    source = io.open_frames(args.input, args.start, args.frames, args.every)
    if args.fps is not None and source.kind == "video":
        raise UserError(f"--fps {args.fps} with the video input '{args.input}', which has its own frame rate "
                        f"({source.fps}); accepted: --fps only with a folder of frames")
    notify = lambda message: say(message, args.quiet)  # noqa: E731
    styles = [load_image(path, "style image", notify, long_side=2 * config.size) for path in args.style]
    inputs = {"input": _describe_source(source, args.record_paths),
              "style": [describe_input(path, args.record_paths) for path in args.style]}
    work = args.output if kind == "folder" else args.output + ".frames"
    record = {"config": config.to_dict(), "video": video.to_dict(), "inputs": inputs,
              "selection": {"start": args.start, "frames": args.frames, "every": args.every}}
    finished = _resume(work, record, source.count, video, notify)
    return _stylize(args, config, video, source, styles, kind, work, record, finished)


def _describe_source(source, full_path):
    if source.kind == "video":
        return describe_input(source.path, full_path)
    out = {"folder": os.path.basename(os.path.normpath(source.path)), "frames": len(source.names)}
    if full_path:
        out["path"] = os.path.abspath(source.path)
    return out


def _resume(work, record, count, video, notify):
    """{index: optimised image} of the frames an earlier run of these options finished (needed ones only)."""
    from ..video import io

    state = os.path.join(work, STATE)
    run_file = os.path.join(state, "run.json")
    if not os.path.exists(run_file):
        if os.path.isdir(work) and any(n.lower().endswith(".png") and not n.startswith(".")
                                                for n in os.listdir(work)):
            raise UserError(f"'{work}' already holds PNG files that are not from an nst-video run; accepted: an "
                            "empty or new folder")
        return {}
    with open(run_file, encoding="utf-8") as f:
        before = json.load(f)
    differ = [k for k in record if before.get(k) != json.loads(json.dumps(record[k]))]
    if differ:
        raise UserError(f"'{work}' holds a run with other {', '.join(differ)}; accepted: the same options to resume "
                        f"it, or another output (or delete '{work}')")
    done = io.finished_frames(work, count)
    if before.get("complete") and done == count:
        notify(f"all {count} frames are finished already (in {work})")
        return {i: None for i in range(count)}
    while done and not os.path.exists(_working_path(state, done - 1)):
        done -= 1
    needed = range(max(0, done - max(video.long_term)), done)
    finished = {i: np.load(_working_path(state, i)) for i in needed}
    finished.update({i: None for i in range(done) if i not in finished})
    if done:
        notify(f"resuming after frame {done} of {count} (finished frames kept in {work})")
    return finished


def _working_path(state, index):
    return os.path.join(state, f"working_{index + 1:06d}.npy")


def _save_working(state, index, image):
    path = _working_path(state, index)
    tmp = path + ".tmp.npy"
    np.save(tmp, image.astype(np.float16))
    os.replace(tmp, path)


def _stylize(args, config, video, source, styles, kind, work, record, finished):
    from ..image import save_json
    from ..video import io
    from ..video.temporal import stylize_frames

    state = os.path.join(work, STATE)
    os.makedirs(state, exist_ok=True)
    save_json(os.path.join(state, "run.json"), record)
    bars = []  # made at the first iteration, after the network's messages (the weights fallback)

    def bar():
        if not bars:
            bars.append(progress_bar(source.count, args.quiet, PROG, unit="frame"))
            bars[0].update(len(finished))
        return bars[0]

    def close():
        for made in bars:
            made.close()

    def callback(progress):
        bar().set_postfix_str(f"frame {progress.frame + 1} it {progress.progress.iteration}/"
                            f"{progress.progress.total_iterations} loss {progress.progress.loss:.4g}")
        return False

    done = len(finished)
    try:
        for result in stylize_frames(source, styles, config, video, callback,
                                     notify=lambda m: say(m, args.quiet),
                                     finished=finished):
            if result.stop_reason != "completed":
                close()
                print(f"{PROG}: the loss became non-finite at frame {result.index + 1}; kept the {done} finished "
                      f"frames in {work}", file=sys.stderr)
                return 1
            io.write_frame(work, result.index + 1, result.image, {"frame": result.index + 1})
            _save_working(state, result.index, result.working)
            stale = _working_path(state, result.index - max(video.long_term))
            if os.path.exists(stale):  # no later frame warps it
                os.remove(stale)
            _append_record(state, _frame_record(result))
            done += 1
            bar().update(1)
    except KeyboardInterrupt:
        close()
        _interrupted(args, source, kind, work, done)
        return 130
    close()
    summary = dict(record, frames=source.count, frame_records=_read_records(state, done), output_kind=kind)
    save_json(os.path.join(state, "run.json"), dict(record, complete=True))
    for name in os.listdir(state):
        if name.startswith("working_"):
            os.remove(os.path.join(state, name))
    if kind == "video":
        summary["encode"] = _encode(args, source, work, done)
        if not args.keep_frames:
            shutil.rmtree(work)
    save_json(sidecar_path(args.output, ".json") if kind == "video" else os.path.join(work, "nst-video.json"), summary)
    say(f"saved {args.output} ({source.count} frames, {done - len(finished)} stylised in this run)", args.quiet)
    return 0


def _append_record(state, entry):
    """One finished frame's record, kept in the work folder so a resumed run reports every frame."""
    with open(os.path.join(state, "frames.jsonl"), "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")


def _read_records(state, done):
    """The records of frames 1..done, the latest of each (a frame re-made after a crash counts once)."""
    path, records = os.path.join(state, "frames.jsonl"), {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:  # a line cut short by a crash
                    continue
                records[entry["frame"]] = entry
    return [records[i] for i in sorted(records) if i <= done]


def _frame_record(result):
    m = result.metadata
    return {"frame": result.index + 1, "seconds": round(result.seconds, 3), "start": m["start"],
            "offsets": m["offsets"], "reliable": m["reliable"], "flow_seconds": round(m["flow_seconds"], 4),
            "final_terms": m.get("final_terms")}


def _encode(args, source, work, count):
    from ..video import io

    # The output keeps the input's duration (frame rate / --every), so its audio stays in step.
    # A frame folder has no frame rate (nor audio): --fps, else FOLDER_FPS.
    fps = (source.fps if source.kind == "video" else args.fps or Fraction(FOLDER_FPS)) / args.every
    paths = [os.path.join(work, io.frame_name(i + 1)) for i in range(count)]
    start, end = source.audio_span() or (0.0, None)
    if count < source.count and source.kind == "video":  # an interrupted run: the audio of the finished frames
        end = source.time_of(count)
    return io.encode_video(paths, args.output, fps, audio_from=source.path if source.has_audio else None,
                           audio_start=start, audio_end=end, crf=args.crf)


def _interrupted(args, source, kind, work, done):
    if not done:
        print(f"{PROG}: interrupted before the first frame was finished; nothing saved", file=sys.stderr)
        return
    if kind == "video":
        _encode(args, source, work, done)
        print(f"{PROG}: interrupted; {done} of {source.count} frames finished, assembled into {args.output}; run "
              f"the same command again to continue (finished frames are kept in {work})", file=sys.stderr)
    else:
        print(f"{PROG}: interrupted; {done} of {source.count} frames finished in {work}; run the same command "
              "again to continue", file=sys.stderr)


def main(argv=None):
    """Entry point; returns the exit code (0 ok, 2 bad input, 1 non-finite loss, 130 interrupted)."""
    return run_main(_run, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
