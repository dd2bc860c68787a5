"""Command line of decoupled mode: argument parsing, progress bar and file output."""
import argparse
import os
import sys

from .cli_common import check_output_path, progress_bar, quiet_tensorflow, run_main, say, sidecar_path
from .errors import UserError

PROG = "nst-decoupled"


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit code 2, like every other user error
        raise UserError(message)


def _segments(text):
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of whole numbers") from None


def _layers(text):
    return tuple(n.strip() for n in text.split(",") if n.strip())


def build_parser():
    from .decoupled import METHODS, SEGMENTS, DecoupledConfig

    d = DecoupledConfig()
    p = _Parser(prog=PROG, description="Decoupled style transfer: normalise the style and content images' "
                "global VGG features to those of noise, layer by layer, then impose the style's recorded "
                "features on the normalised content (Martinez-Enriquez, Gonzalez & Portilla 2022).")
    p.add_argument("content", help="content image")
    p.add_argument("style", help="style image (centre-cropped to the content's shape)")
    p.add_argument("-o", "--output", default="out.png", help="output PNG (default: %(default)s)")
    p.add_argument("--size", type=int, default=d.size, help="long side of the working image (default: %(default)s)")
    p.add_argument("--max-size", type=int, default=d.max_size, help="largest accepted --size (default: %(default)s)")
    p.add_argument("--model", default=d.model, help="vgg16 or vgg19 (default: %(default)s)")
    p.add_argument("--weights", default=d.weights,
                   help="auto, hed, imagenet, random or a .h5 path (default: %(default)s)")
    p.add_argument("--method", default=d.method, help=f"{', '.join(METHODS)} (default: %(default)s)")
    p.add_argument("--layers", type=_layers, default=d.layers,
                   help="comma-separated Keras layer names, shallow to deep (default: block1..5_conv1)")
    p.add_argument("--segments", type=_segments, default=None,
                   help="path segments per layer (default: %s; reversible: %s)"
                   % (",".join(map(str, SEGMENTS["projected"])), ",".join(map(str, SEGMENTS["reversible"]))))
    p.add_argument("--reversible-layers", type=int, default=d.reversible_layers,
                   help="with --method reversible: the first N layers use the reversible scheme, deeper ones "
                        "the projected one (default: %(default)s)")
    p.add_argument("--noise-draws", type=int, default=d.noise_draws,
                   help="noise images averaged for the reference (default: %(default)s)")
    p.add_argument("--penalty-steps", type=int, default=d.penalty_steps,
                   help="SGD steps per layer with --method penalty (default: %(default)s)")
    p.add_argument("--penalty-learning-rate", type=float, default=d.penalty_learning_rate,
                   help="SGD learning rate with --method penalty (default: %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the noise draws and random weights")
    p.add_argument("--report", metavar="JSON", help="write the per-stage, per-layer report here")
    p.add_argument("--save-normalized", action="store_true",
                   help="also save OUT_style_normalized.png and OUT_content_normalized.png")
    p.add_argument("--plots", action="store_true",
                   help="also save OUT_convergence.png and OUT_reference.png")
    p.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    return p


def config_from_args(args):
    from .decoupled import DecoupledConfig

    return DecoupledConfig(size=args.size, max_size=args.max_size, model=args.model, weights=args.weights,
                           layers=args.layers, method=args.method, segments=args.segments,
                           reversible_layers=args.reversible_layers,
                           noise_draws=args.noise_draws,
                           penalty_steps=args.penalty_steps, penalty_learning_rate=args.penalty_learning_rate,
                           seed=args.seed).validate()


def _outputs(args):
    out = {"image": args.output}
    if args.save_normalized:
        out["style_normalized"] = sidecar_path(args.output, "_style_normalized.png")
        out["content_normalized"] = sidecar_path(args.output, "_content_normalized.png")
    if args.plots:
        out["convergence"] = sidecar_path(args.output, "_convergence.png")
        out["reference"] = sidecar_path(args.output, "_reference.png")
    return out


def _run(argv):
    quiet_tensorflow()
    args = build_parser().parse_args(argv)
    from .models import validate_layers

    validate_layers(args.model, list(args.layers))
    config = config_from_args(args)
    inputs = [args.content, args.style]
    outputs = _outputs(args)
    for path in outputs.values():
        check_output_path(path, inputs)
    if args.report:
        check_output_path(args.report, inputs + list(outputs.values()), role="report", extensions=(".json",))
    if len(set(map(os.path.abspath, outputs.values()))) < len(outputs):
        raise UserError("two outputs share a path; accepted: distinct output paths")
    from .image import load_image

    content = load_image(args.content, "content image")
    style = load_image(args.style, "style image")
    return _transfer_and_save(args, config, content, style, outputs)


def _transfer_and_save(args, config, content, style, outputs):
    from .decoupled import convergence_figure, decoupled_transfer, reference_figure
    from .image import atomic_write, save_json, save_png

    bars, seen, finished = [], set(), {}

    def callback(p):
        if p.report is not None:  # a stage ended: keep its image in case the run is interrupted
            finished[p.stage] = (p.layer, p.image)
        if not bars:
            bars.append(progress_bar(p.num_stages, args.quiet, PROG))
        bar = bars[0]
        if p.stage_index not in seen:
            if seen:
                bar.update(1)
            seen.add(p.stage_index)
        bar.set_postfix_str(f"{p.stage} {p.layer} segment {p.segment} SNR {p.snr_db:.1f} dB "
                            f"passes {p.passes['forward']}+{p.passes['reverse']}")

    try:
        result = decoupled_transfer(content, style, config, callback=callback, notify=lambda m: say(m, args.quiet))
    except KeyboardInterrupt:
        for bar in bars:
            bar.close()
        _save_interrupted(args, config, finished, outputs)
        return 130
    for bar in bars:
        bar.update(1)
        bar.close()
    metadata = dict(result.metadata, inputs={"content": args.content, "style": args.style})
    save_png(outputs["image"], result.image, metadata)
    if args.save_normalized:
        save_png(outputs["style_normalized"], result.normalized_style, {"normalized": "style"})
        save_png(outputs["content_normalized"], result.normalized_content, {"normalized": "content"})
    if args.report:
        report = result.report()
        report["metadata"] = metadata
        report["history"] = result.history
        save_json(args.report, report)
    if args.plots:
        for key, fig in (("convergence", convergence_figure(result.history, result.stages)),
                         ("reference", reference_figure(result.reference))):
            atomic_write(outputs[key], lambda tmp, fig=fig: fig.savefig(tmp, dpi=90, format="png"))
    t = result.report()["totals"]
    say(f"saved {args.output} ({result.image.shape[1]}x{result.image.shape[0]}, "
        f"{result.metadata['extractor']['model']} weights={result.metadata['extractor']['weights']}, "
        f"min SNR set layer {t['min_set_snr_db']:.1f} dB, {t['wall_time_s']:.0f} s)", args.quiet)
    return 0


def _save_interrupted(args, config, finished, outputs):
    """Ctrl-C: the last good image is the one after the last finished imposing stage (its deeper
    layers carry the style's features); before the imposition there is none, so nothing is saved.
    With --save-normalized, a normalised image is saved once its last stage has finished."""
    from .image import save_png

    last = config.layers[-1]
    if args.save_normalized:
        for kind in ("style", "content"):
            if kind in finished and finished[kind][0] == last:
                save_png(outputs[f"{kind}_normalized"], finished[kind][1], {"normalized": kind})
    if "impose" not in finished:
        print(f"{PROG}: interrupted before the imposition; nothing saved", file=sys.stderr)
        return
    layer, image = finished["impose"]
    save_png(outputs["image"], image, {"interrupted": f"imposed down to {layer}", "config": config.to_dict(),
                                       "inputs": {"content": args.content, "style": args.style}})
    print(f"{PROG}: interrupted; saved the image imposed down to {layer} to {args.output}", file=sys.stderr)


def main(argv=None):
    """Entry point; returns the exit code (0 ok, 2 bad input, 130 interrupted)."""
    return run_main(_run, argv, PROG)
