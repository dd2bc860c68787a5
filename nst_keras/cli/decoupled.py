"""nst-decoupled / scripts/decoupled.py: decoupled-mode style transfer from the command line.

Every field of DecoupledConfig has a flag generated from it (its default shown from the config),
so the CLI and the API cannot disagree; the help texts live here.
"""
import argparse
import dataclasses
import os
import sys

from ..errors import UserError
from .common import (Parser, add_common_flags, check_output_path, config_flags, config_from_args, describe_input,
                     progress_bar, quiet_start, run_main, say, sidecar_path)

PROG = "nst-decoupled"
TARGET_SNR_DB = 60  # what every stage must reach for exit 0 (the method's target in BENCHMARKS.md)
SAVED_TARGET_DB = 40  # what the saved image must keep of the result's features, every layer, for exit 0

# Help per DecoupledConfig field; fields in ADVANCED go to their own group of the --help page.
HELP = {
    "size": "long side of the working image in px (default: 128, or the smallest size the size rule accepts "
            "for the content's shape: 160 for 4:3 and 3:4, 176 for 16:9)",
    "max_size": "largest accepted --size",
    "model": "vgg16 or vgg19",
    "weights": "auto, hed, imagenet, random or a .h5 path",
    "layers": "comma-separated Keras layer names, shallow to deep",
    "method": "projected, reversible or penalty",
    "noise_draws": "noise images averaged for the reference",
    "segments": "path segments per layer, comma-separated (default: by method: projected 4,2,2,1,1; "
                "reversible 32,16,8,1,1)",
    "reversible_layers": "with --method reversible: the first N layers use the reversible scheme, deeper ones "
                         "the projected one",
    "penalty_steps": "SGD steps per layer with --method penalty",
    "penalty_learning_rate": "SGD learning rate with --method penalty",
    "seed": "seed of the noise draws and random weights",
    "tolerance": "relative feature error at which a segment's corrections stop",
    "max_corrections": "corrector iterations (forward passes) per segment",
    "max_refreshes": "fresh Jacobians a segment may take when its corrections stall",
    "fixed_point_iterations": "reversible: Jacobian updates of an implicit (normalising) segment",
    "fixed_point_tolerance": "reversible: relative image change at which they stop",
    "smoothing": "reversible: softening of ReLU and max-pool derivatives (fraction of each layer's spread)",
    "straight_through": "reversible: softened derivatives at the exact network's activations",
    "reversible_tolerance": "reversible: the corrector tolerance",
    "allow_imprecise": "run a size with too few deep positions per channel for 60 dB anyway (one-line warning) "
                       "instead of refusing it",
    "polish": "after the imposition, set all layers together on the image as saved, pixels kept in [0, 1]",
    "polish_jacobians": "most Jacobians the final polish may take",
    "dead_tolerance": "a channel whose reference mean is below this fraction of its layer's largest is left "
                      "unconstrained",
}
ADVANCED = ("tolerance", "max_corrections", "max_refreshes", "fixed_point_iterations", "fixed_point_tolerance",
            "smoothing", "straight_through", "reversible_tolerance", "dead_tolerance", "polish_jacobians")


def _segments(text):
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of whole numbers") from None


def _layers(text):
    return tuple(n.strip() for n in text.split(",") if n.strip())


_TYPES = {"layers": _layers, "segments": _segments, "size": int}


def _config_class():
    from ..decoupled.config import DecoupledConfig

    return DecoupledConfig


def build_parser():
    config_class = _config_class()
    defaults = config_class()
    p = Parser(prog=PROG, description="Decoupled style transfer: normalise the style and content images' "
               "global VGG features to those of noise, layer by layer, then impose the style's recorded "
               "features on the normalised content (Martinez-Enriquez, Gonzalez & Portilla 2022).")
    p.add_argument("content", help="content image")
    p.add_argument("style", help="style image (centre-cropped to the content's shape)")
    add_common_flags(p)
    groups = {False: p.add_argument_group("method"), True: p.add_argument_group("numerics (advanced)")}
    for field in dataclasses.fields(config_class):
        flag = "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        text = HELP.get(field.name, field.name.replace("_", " "))
        if default is not None:
            text += f" (default: {shown})"
        group = groups[field.name in ADVANCED]
        if isinstance(default, bool):
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=text)
        else:
            kind = _TYPES.get(field.name, type(default) if default is not None else str)
            group.add_argument(flag, type=kind, default=default, help=text.replace("%", "%%"))
    g = p.add_argument_group("outputs")
    g.add_argument("--report", metavar="JSON", help="write the per-stage, per-layer report here")
    g.add_argument("--save-normalized", action="store_true",
                   help="also save OUT_style_normalized.png and OUT_content_normalized.png")
    g.add_argument("--plots", action="store_true", help="also save OUT_convergence.png and OUT_reference.png")
    return p


def flag_fields():
    """{DecoupledConfig field: --flag}, every field (a test checks the parser has each)."""
    return config_flags(_config_class())


def _inputs(args):
    return {"content": describe_input(args.content, args.record_paths),
            "style": describe_input(args.style, args.record_paths)}


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
    args = build_parser().parse_args(argv)
    quiet_start(args.verbose)
    from ..models import validate_layers

    validate_layers(args.model, list(args.layers))
    config = config_from_args(_config_class(), args)
    inputs = [args.content, args.style]
    outputs = _outputs(args)
    for path in outputs.values():
        check_output_path(path, inputs)
    if args.report:
        check_output_path(args.report, inputs + list(outputs.values()), role="report", extensions=(".json",))
    if len(set(map(os.path.abspath, outputs.values()))) < len(outputs):
        raise UserError("two outputs share a path; accepted: distinct output paths")
    from ..image import load_image

    notify = lambda message: say(message, args.quiet)  # noqa: E731
    long_side = config.size or config.max_size  # no --size: the size rule chooses one up to --max-size
    content = load_image(args.content, "content image", notify, long_side=long_side)
    style = load_image(args.style, "style image", notify, long_side=long_side)
    return _transfer_and_save(args, config, content, style, outputs)


def _transfer_and_save(args, config, content, style, outputs):
    from ..decoupled import convergence_figure, decoupled_transfer, reference_figure
    from ..image import save_json, save_png
    from ..progress import save_figure

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
    metadata = dict(result.metadata, inputs=_inputs(args))
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
            save_figure(outputs[key], fig, dpi=90)
    t = result.report()["totals"]
    kept = result.metadata.get("saved_vs_result_snr_db") or {}
    say(f"saved {args.output} ({result.image.shape[1]}x{result.image.shape[0]}, "
        f"{result.metadata['extractor']['model']} weights={result.metadata['extractor']['weights']}, "
        f"min SNR set layer {t['min_set_snr_db']:.1f} dB, {t['wall_time_s']:.0f} s"
        + (f"; as saved, the result's features kept to {min(kept.values()):.1f} dB or better" if kept else "")
        + ")", args.quiet)
    return _check_reached(args, config, result.stages, result.metadata)


def _check_reached(args, config, stages, metadata=None):
    """Exit 0 only if every stage set its layer, and kept the earlier ones, to TARGET_SNR_DB (the
    penalty baseline promises no such level), and the saved image kept SAVED_TARGET_DB of the
    result's features at every layer: else one line naming the worst, exit 1."""
    kept = (metadata or {}).get("saved_vs_result_snr_db") or {}
    if kept and min(kept.values()) < SAVED_TARGET_DB:
        layer = min(kept, key=kept.get)
        print(f"{PROG}: the saved image (clipped to [0, 1], 8 bits) keeps {layer}'s features of the result at only "
              f"{kept[layer]:.1f} dB, below {SAVED_TARGET_DB} dB; saved anyway to {args.output}", file=sys.stderr)
        return 1
    if config.method == "penalty":
        return 0
    worst = min(stages, key=lambda s: min(s["set_snr_db"], s["min_earlier_snr_db"] or float("inf")))
    level = min(worst["set_snr_db"], worst["min_earlier_snr_db"] or float("inf"))
    if level >= TARGET_SNR_DB:
        return 0
    what = "its layer" if worst["set_snr_db"] == level else "the earlier layers"
    print(f"{PROG}: the {worst['stage']} stage at {worst['layer']} left {what} at {level:.1f} dB, below the "
          f"{TARGET_SNR_DB} dB target; saved anyway to {args.output} (try a larger --size or more --segments)",
          file=sys.stderr)
    return 1


def _save_interrupted(args, config, finished, outputs):
    """Ctrl-C: the last good image is the one after the last finished imposing stage (its deeper
    layers carry the style's features); before the imposition there is none, so nothing is saved.
    With --save-normalized, a normalised image is saved once its last stage has finished."""
    from ..image import save_png

    last = config.layers[-1]
    if args.save_normalized:
        for kind in ("style", "content"):
            if kind in finished and finished[kind][0] == last:
                save_png(outputs[f"{kind}_normalized"], finished[kind][1], {"normalized": kind})
    if "impose" not in finished:
        print(f"{PROG}: interrupted before the imposition; nothing saved", file=sys.stderr)
        return
    layer, image = finished["impose"]
    if config.size is None:  # chosen by the size rule: the image's long side
        config = config.replace(size=max(image.shape[:2]))
    save_png(outputs["image"], image, {"interrupted": f"imposed down to {layer}", "config": config.to_dict(),
                                       "inputs": _inputs(args)})
    print(f"{PROG}: interrupted; saved the image imposed down to {layer} to {args.output}", file=sys.stderr)


def main(argv=None):
    """Entry point; returns the exit code (0 ok, 1 a stage below TARGET_SNR_DB, 2 bad input, 130 interrupted)."""
    return run_main(_run, argv, PROG)
