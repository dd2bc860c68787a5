"""Decoupled mode: precision, cost and round trip of steps 0-3 on the samples (writes BENCHMARKS.md).

    python benchmarks/bench_decoupled.py [--sizes 128 256] [--parts transfer penalty reversible shapes]
                                         [--no-round-trip] [--penalty-steps 100] [--no-write]
                                         [--shapes 4:3 3:4 16:9 1:1] [--fit]

Parts, each written to its own BENCHMARKS.md section:
- transfer (section decoupled-SIZE, per size): reference (step 0), style and content
  normalisation (steps 1-2), imposition of the style's features on the normalised content
  (step 3), then the round trip (the content's own features imposed on its normalised image =
  a self-transfer), all with the default 'projected' method;
- penalty (decoupled-penalty, first size): the thesis's SGD on summed losses, normalising and
  re-imposing the content;
- reversible (decoupled-reversible, or --section; sizes and layers from --reversible): the
  round trip with the 'reversible' method (layers after the first --reversible-layers take the
  projected scheme).
- shapes (decoupled-shapes): decoupled_transfer as the CLI runs it (size rule, polish) on
  content/style pairs cropped in the benchmark to each --shapes aspect ratio, at each --sizes long
  side: a refused size is reported with the smallest size the rule names, and with --fit that size
  is run instead. Reports wall time, passes per stage, stage SNRs and the SNRs of the image as saved.
Images for the README go to docs/decoupled/.
"""
import argparse
import glob
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from benchmarks._report import write_section  # noqa: E402
from nst_keras import decoupled as dc  # noqa: E402
from nst_keras.decoupled.sizes import shortfall, smallest_size  # noqa: E402
from nst_keras.errors import UserError  # noqa: E402
from nst_keras.image import center_crop, contact_sheet, load_image, save_png, size_for_long_side  # noqa: E402
from nst_keras.precision import cpu_model_and_flags  # noqa: E402

DOCS = os.path.join(ROOT, "docs", "decoupled")


def samples():
    content = sorted(glob.glob(os.path.join(ROOT, "samples", "content_*.jpg")))[0]
    style = sorted(glob.glob(os.path.join(ROOT, "samples", "style_*.jpg")))[0]
    return content, style


def _sci(v):
    """1e-4, 1e-9: a tolerance as written in the docs."""
    mantissa, exponent = f"{v:.3e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def _fmt(v, spec=".1f"):
    if v is None:
        return "–"
    return format(v, spec)


def stage_table(stages, show_method=False):
    head = ("| stage | layer | set SNR dB | min earlier SNR dB | max abs cos (projected step) | "
            "max abs cos (segment move) | Jacobians | fwd / rev passes | wall s | CPU s | unconstrained | "
            "out of [0,1] |\n|---|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for s in stages:
        dropped = sum(len(v) for v in (s.get("gradient_dead") or {}).values()) + \
            sum(len(v) for v in (s.get("dependent") or {}).values())
        lines.append(
            f"| {s['stage']}{' (' + s['method'] + ')' if show_method else ''} | {s['layer']} | "
            f"{_fmt(s['set_snr_db'])} | {_fmt(s['min_earlier_snr_db'])} | "
            f"{_fmt(s['max_abs_cos'], '.1e')} | {_fmt(s.get('max_abs_cos_segment_move'), '.1e')} | "
            f"{s.get('jacobians', '–')}{' (+%d splits)' % s['segment_splits'] if s.get('segment_splits') else ''} | "
            f"{s['passes']['forward']} / {s['passes']['reverse']} | {s['wall_time_s']:.1f} | {s['cpu_time_s']:.1f} | "
            f"{len(s['unconstrained_channels'])}/{s['channels']}{' +%d' % dropped if dropped else ''} | "
            f"{100 * s['out_of_box_fraction']:.1f}% (max {s['max_out_of_box']:.2f}) |")
    return "\n".join(lines)


def run_size(size, content_path, style_path, config, log, partial=None, on_stage=None, round_trip=True):
    content = center_crop(load_image(content_path), (size, size))
    style = center_crop(load_image(style_path), (size, size))
    config = config.replace(size=size)
    partial = [] if partial is None else partial
    t0, c0 = time.perf_counter(), time.process_time()
    net, extractor = dc.build_net(config, (size, size))
    build = time.perf_counter() - t0
    t1, c1 = time.perf_counter(), time.process_time()
    reference = dc.reference_features(net, config.noise_draws, config.seed, config.dead_tolerance)
    ref_time = time.perf_counter() - t1
    n = len(net.layers)

    def cb(p):
        if p.report is not None:
            r = p.report
            log(f"  {size}px {p.stage} {p.layer}: set {r['set_snr_db']:.1f} dB, earlier "
                f"{_fmt(r['min_earlier_snr_db'])} dB, {r.get('jacobians')} Jacobians, {r['wall_time_s']:.0f} s")
            partial.append(r)
            if on_stage is not None:
                on_stage()

    context = dc.StageContext(num_stages=3 * n, callback=cb)
    norm_style, style_features, r1, h1 = dc.normalize(net, style, reference, config, context.replace(kind="style"))
    norm_content, content_features, r2, h2 = dc.normalize(net, content, reference, config,
                                                          context.replace(kind="content", stage_index=n))
    result, r3, h3 = dc.impose(net, norm_content, style_features, reference, config,
                               context.replace(kind="impose", stage_index=2 * n))
    pipeline_wall = time.perf_counter() - t1 + build
    pipeline_cpu = time.process_time() - c0
    t2 = time.perf_counter()
    back, r4, rmse, rmse_clipped = None, [], None, None
    if round_trip:
        back, r4, _ = dc.impose(net, norm_content, content_features, reference, config,
                              dc.StageContext("round trip", 0, n, cb))
        rmse = float(np.linalg.norm(back - content) / np.linalg.norm(content))
        rmse_clipped = float(np.linalg.norm(np.clip(back, 0, 1) - content) / np.linalg.norm(content))
    rt_wall = time.perf_counter() - t2
    return {"size": size, "content": os.path.basename(content_path), "style": os.path.basename(style_path),
            "extractor": extractor.describe(), "build_s": build, "reference_s": ref_time,
            "reference": reference.summary(), "stages": r1 + r2 + r3, "round_trip_stages": r4,
            "pipeline_wall_s": pipeline_wall, "pipeline_cpu_s": pipeline_cpu, "round_trip_wall_s": rt_wall,
            "round_trip_rmse": rmse, "round_trip_rmse_clipped": rmse_clipped,
            "totals": dc.totals(r1 + r2 + r3), "history": h1 + h2 + h3,
            "images": {"content": content, "style": style, "norm_style": norm_style,
                       "norm_content": norm_content, "result": result, "back": back}}


def _round_trip_setup(size, content_path, config):
    """The square content crop, its FeatureMeans and the noise reference for a round-trip part."""
    content = center_crop(load_image(content_path), (size, size))
    net, _ = dc.build_net(config, (size, size))
    return content, net, dc.reference_features(net, config.noise_draws, config.seed, config.dead_tolerance)


def run_reversible(size, content_path, config, log, layers=5, segments=None, on_stage=None):
    """Round trip of the content with the reversible method (first `layers` layers); also saves
    its sheet. on_stage(stage reports so far) after each stage."""
    config = config.replace(size=size, method="reversible", layers=dc.LAYERS[:layers], segments=segments)
    t0, c0 = time.perf_counter(), time.process_time()
    content, net, reference = _round_trip_setup(size, content_path, config)
    log(f"  {size}px reversible round trip, segments {config.path_segments} ...")

    done = []

    def cb(p):
        if p.report is not None:
            r = p.report
            log(f"  {size}px reversible {p.stage} {p.layer}: set {r['set_snr_db']:.1f} dB, "
                f"{r.get('jacobians')} Jacobians, {r['wall_time_s']:.0f} s")
            done.append(r)
            if on_stage is not None:
                on_stage(done)

    back, normalised, rmse, reports = dc.round_trip(net, content, reference, config, cb)
    sheet = contact_sheet([content, np.clip(normalised, 0, 1), np.clip(back, 0, 1)],
                          ["content", "normalised", "round trip"], columns=3, cell=size)
    soft = "" if config.straight_through else "_soft"
    save_png(os.path.join(DOCS, f"reversible_round_trip_{size}_{layers}layers{soft}.png"), sheet)
    return {"size": size, "layers": layers, "stages": reports, "round_trip_rmse": rmse, "segments": list(config.path_segments),
            "reversible_layers": config.reversible_layers, "projected_tolerance": config.tolerance,
            "smoothing": config.smoothing, "straight_through": config.straight_through,
            "fixed_point_iterations": config.fixed_point_iterations, "tolerance": config.corrector_tolerance,
            "round_trip_rmse_clipped": float(np.linalg.norm(np.clip(back, 0, 1) - content) / np.linalg.norm(content)),
            "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
            "max_abs_diff": float(np.abs(back - content).max())}


def run_penalty(size, content_path, config, steps, log):
    config = config.replace(size=size, method="penalty", penalty_steps=steps)
    content, net, reference = _round_trip_setup(size, content_path, config)
    log(f"  {size}px penalty baseline, {steps} SGD steps per layer ...")
    t0 = time.perf_counter()
    back, _, rmse, reports = dc.round_trip(net, content, reference, config)
    return {"stages": reports, "round_trip_rmse": rmse, "wall_s": time.perf_counter() - t0, "steps": steps,
            "learning_rate": config.penalty_learning_rate}


def save_figures(res):
    im = res["images"]
    clip = {k: np.clip(v, 0, 1) for k, v in im.items() if v is not None}  # no 'back' without a round trip
    sheet = contact_sheet([clip["content"], clip["style"], clip["norm_style"], clip["norm_content"], clip["result"]],
                          ["content", "style", "normalised style", "normalised content", "result"], columns=5,
                          cell=res["size"])
    save_png(os.path.join(DOCS, f"transfer_{res['size']}.png"), sheet)
    if im["back"] is None:
        return
    sheet = contact_sheet([clip["content"], clip["norm_content"], clip["back"]],
                          ["content (= style)", "normalised", "self-transfer"], columns=3, cell=res["size"])
    save_png(os.path.join(DOCS, f"self_transfer_{res['size']}.png"), sheet)


def _intro(command, load):
    names = [os.path.basename(p) for p in samples()]
    return ["## Decoupled mode", "", f"Command: `{command}`", "",
            "Samples: content `%s`, style `%s`, centre-cropped to squares; bundled VGG16 backbone "
            "(weights `hed`); layers block1..5_conv1 (64+128+256+512+512 channels)." % tuple(names),
            f"Machine load (1-min load average at the start): {load}. CPU seconds are this process's own.", ""]


def markdown_size(r, command, load):
    t = r["totals"]
    out = _intro(command, load) + [
        f"### {r['size']}x{r['size']}, method projected", "",
        f"- Steps 0-3 (build {r['build_s']:.0f} s, reference {r['reference_s']:.1f} s, three times five "
        f"stages): **{r['pipeline_wall_s'] / 60:.1f} min wall**, {r['pipeline_cpu_s'] / 60:.1f} min CPU; "
        f"{t['forward_passes']} forward and {t['reverse_passes']} reverse-mode passes (Jacobian rows).",
        f"- Lowest SNR of a layer being set: {t['min_set_snr_db']:.1f} dB; lowest SNR of an earlier layer "
        f"at the end of a stage: {t['min_earlier_snr_db']:.1f} dB; largest abs cosine between a projected "
        f"step and an earlier layer's channel gradient: {t['max_abs_cos']:.1e}."]
    if r["round_trip_rmse"] is not None:
        out += [f"- Round trip (content normalised, then its own features imposed; {r['round_trip_wall_s']:.0f} s "
                f"for the imposition): relative RMSE **{r['round_trip_rmse']:.3f}** "
                f"({r['round_trip_rmse_clipped']:.3f} after clipping to [0, 1])."]
    out += ["", stage_table(r["stages"]), ""]
    if r["round_trip_stages"]:
        out += ["Round trip, imposition stages:", "", stage_table(r["round_trip_stages"]), ""]
    ref = r["reference"]
    out += ["Reference (mean of noise draws): dead channels per layer "
            + ", ".join(f"{k} {len(v['dead_channels'])}" for k, v in ref.items())
            + "; median relative spread over draws "
            + ", ".join(f"{k} {v['relative_spread_median']:.3f}" for k, v in ref.items()) + ".", ""]
    return "\n".join(out)


def markdown_penalty(penalty, size, command, load):
    return "\n".join(_intro(command, load) + [
        f"### Penalty baseline ({size}x{size}, content normalised and re-imposed)", "",
        f"Plain SGD on the summed losses of layers 1..k, learning rate {penalty['learning_rate']}, "
        f"{penalty['steps']} steps per layer ({penalty['wall_s'] / 60:.1f} min); round-trip relative RMSE "
        f"{penalty['round_trip_rmse']:.3f}.", "", stage_table(penalty["stages"]), ""])


def markdown_reversible(revs, command, load):
    out = _intro(command, load)
    for rev in revs:
        out += _markdown_reversible(rev)
    return "\n".join(out)


def _markdown_reversible(rev):
    size, deep = rev["size"], rev["layers"] > rev.get("reversible_layers", rev["layers"])
    return [f"### Reversible round trip ({size}x{size}, block1..{rev['layers']}_conv1, content normalised "
            "and its own features re-imposed)", "",
        f"Method `reversible`: segments {rev['segments']}"
        + (f"; layers after the first {rev['reversible_layers']} take the projected scheme (exact Jacobians, "
           f"tolerance {_sci(rev.get('projected_tolerance', 1e-4))})" if deep else "")
        + ", Jacobians with ReLU and max pool softened at "
        f"{rev['smoothing']} x each layer's spread"
        + (" (straight through: only their derivatives, at the exact network's values)" if rev["straight_through"]
           else " (at the softened network's own values)") + f", up to {rev['fixed_point_iterations']} fixed-point "
        f"iterations per normalising segment; features in float64, corrector tolerance {_sci(rev['tolerance'])}, "
        f"its model started from the exact network's Jacobian rows. **{rev['wall_s'] / 60:.1f} min wall**, "
        f"{rev['cpu_s'] / 60:.1f} min CPU. Round trip relative RMSE **{rev['round_trip_rmse']:.2e}** "
        f"({rev['round_trip_rmse_clipped']:.2e} "
        f"after clipping to [0, 1]); largest pixel difference {rev['max_abs_diff']:.2e}. The cosine column is "
        "measured against the exact (unsmoothed) channel gradients of the earlier layers at the start of "
        "each stage.", "", stage_table(rev["stages"], show_method=deep), ""]


def shape_pairs(shapes):
    """(aspect (h, w), content path, style path) per shape, content and style taken in turn from
    the samples so that every pair differs."""
    contents = sorted(glob.glob(os.path.join(ROOT, "samples", "content_*.jpg")))
    styles = sorted(glob.glob(os.path.join(ROOT, "samples", "style_*.jpg")))
    out = []
    for i, text in enumerate(shapes):
        w, h = (int(v) for v in text.split(":"))
        out.append(((h, w), contents[i % len(contents)], styles[i % len(styles)]))
    return out


def run_shape(aspect, size, content_path, style_path, config, log, fit):
    """One decoupled_transfer of a pair cropped to `aspect` at long side `size` (the size rule
    first: a refusal is recorded, and with fit=True the smallest accepted size is run)."""
    shape = size_for_long_side(aspect, size)
    content = center_crop(load_image(content_path), shape)
    style = center_crop(load_image(style_path), shape)
    out = {"aspect": f"{aspect[1]}:{aspect[0]}", "requested_size": size, "content": os.path.basename(content_path),
           "style": os.path.basename(style_path), "refused": None}
    run = config.replace(size=size)
    net, _ = dc.build_net(run, shape)
    reference = dc.reference_features(net, run.noise_draws, run.seed, run.dead_tolerance)
    short = shortfall(shape, reference, run.layers)
    if short:
        smallest = smallest_size(shape, {n: live for n, _, live in short}, run.max_size)
        try:
            dc.check_positions(shape, reference, run)
        except UserError as error:
            out["refused"] = str(error)
        if not fit or smallest is None:
            return out
        run = run.replace(size=smallest)
        shape = size_for_long_side(aspect, smallest)
        content, style = center_crop(load_image(content_path), shape), center_crop(load_image(style_path), shape)
    log(f"  {out['aspect']} {shape[1]}x{shape[0]}: {out['content']} + {out['style']}")

    def cb(p):
        if p.report is not None:
            r = p.report
            log(f"    {p.stage} {p.layer}: set {r['set_snr_db']:.1f} dB, earlier {_fmt(r['min_earlier_snr_db'])} dB, "
                f"{r.get('jacobians')} Jacobians, {r['wall_time_s']:.0f} s")

    t0, c0 = time.perf_counter(), time.process_time()
    result = dc.decoupled_transfer(content, style, run, callback=cb)
    out.update({"shape": list(shape), "size": run.size, "wall_s": time.perf_counter() - t0,
                "cpu_s": time.process_time() - c0, "stages": result.stages, "totals": dc.totals(result.stages),
                "after_clipping_snr_db": result.metadata["after_clipping_snr_db"],
                "saved_vs_result_snr_db": result.metadata["saved_vs_result_snr_db"],
                "polish": result.metadata["polish"]})
    sheet = contact_sheet([content, style, result.image], ["content", "style", "result (as saved)"], columns=3,
                          cell=max(shape))
    save_png(os.path.join(DOCS, f"shape_{aspect[1]}x{aspect[0]}_{run.size}.png"), sheet)
    return out


def _db(values):
    return " / ".join(_fmt(v) for v in values.values()) if values else "–"


def markdown_shapes(runs, command, load):
    cpu = cpu_model_and_flags("/proc/cpuinfo")[0] or "unknown CPU"
    out = ["## Decoupled mode: shapes and sizes (the size rule, the polish, the image as saved)", "",
           f"Command: `{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}). CPU: **{cpu}**, "
           f"{os.cpu_count()} cores; 1-min load average at the start: {load}. Bundled VGG16 (weights `hed`), "
           "block1..5_conv1, method projected; each pair is cropped to its shape in the benchmark, the style "
           "centre-cropped to the content's shape, and run by `decoupled_transfer` as the CLI runs it.", "",
           "SNRs per layer are block1 / block2 / block3 / block4 / block5. *As saved*: the image clipped to "
           "[0, 1] and rounded to 8 bits, against the style's recorded features (`after_clipping_snr_db`) and "
           "against the unclipped result's own features (`saved_vs_result_snr_db`, what saving kept).", "",
           "| shape | pair | size (px) | outcome | wall min | fwd / rev passes | min set SNR dB | min earlier SNR dB "
           "| polish (Jacobians, s) | as saved vs style dB | as saved vs result dB |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        pair = f"{r['content']} + {r['style']}"
        if r.get("stages") is None:
            out.append(f"| {r['aspect']} | {pair} | {r['requested_size']} | refused: {r['refused']} | | | | | | | |")
            continue
        t, pol = r["totals"], r["polish"] or {}
        outcome = "ran" if not r["refused"] else f"refused at {r['requested_size']}, ran the size named"
        out.append(f"| {r['aspect']} | {pair} | {r['shape'][1]}x{r['shape'][0]} | {outcome} | {r['wall_s'] / 60:.1f} | "
                   f"{t['forward_passes']} / {t['reverse_passes']} | {t['min_set_snr_db']:.1f} | "
                   f"{_fmt(t['min_earlier_snr_db'])} | {pol.get('jacobians', '–')}, {pol.get('wall_time_s', 0):.0f} | "
                   f"{_db(r['after_clipping_snr_db'])} | {_db(r['saved_vs_result_snr_db'])} |")
    for r in runs:
        if r.get("stages"):
            out += ["", f"### {r['aspect']}, {r['shape'][1]}x{r['shape'][0]}: stages", "", stage_table(r["stages"])]
    return "\n".join(out) + "\n"


def _reversible_item(text):
    """SIZE:LAYERS[:SEGMENTS] -> (size, layers, segments or None)."""
    try:
        parts = text.split(":")
        if len(parts) not in (2, 3):
            raise ValueError
        segments = tuple(int(v) for v in parts[2].split(",")) if len(parts) == 3 else None
        return int(parts[0]), int(parts[1]), segments
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}'; accepted: SIZE:LAYERS or SIZE:LAYERS:S1,S2,... "
                                         "(whole numbers, e.g. 64:2:16,8)") from None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    p.add_argument("--parts", nargs="+", default=["transfer", "penalty", "reversible"],
                   choices=["transfer", "penalty", "reversible", "shapes"])
    p.add_argument("--shapes", nargs="+", default=["4:3", "3:4", "16:9", "1:1"],
                   help="shapes part: aspect ratios W:H, one content/style pair each (default: %(default)s)")
    p.add_argument("--fit", action="store_true", help="shapes part: run a refused size at the smallest size named")
    p.add_argument("--no-round-trip", action="store_true", help="transfer part: skip the round trip")
    p.add_argument("--reversible", nargs="+", type=_reversible_item,
                   default=[(64, 2, (16, 8)), (128, 2, None)],
                   metavar="SIZE:LAYERS[:SEGMENTS]",
                   help="reversible part: size, number of layers and optionally segments per layer "
                        "(comma-separated) (default: 64:2:16,8 128:2)")
    p.add_argument("--reversible-layers", type=int, default=dc.DecoupledConfig().reversible_layers,
                   help="reversible part: layers after the first N take the projected scheme (default: %(default)s)")
    p.add_argument("--soft-values", action="store_true",
                   help="reversible part: take the softened derivatives at the softened network's own values "
                        "instead of straight through at the exact ones (section decoupled-reversible-soft)")
    p.add_argument("--section", default=None,
                   help="reversible / shapes part: BENCHMARKS.md section to write (default: decoupled-reversible[-soft], "
                        "decoupled-shapes)")
    p.add_argument("--penalty-steps", type=int, default=100)
    p.add_argument("--no-write", action="store_true", help="print the markdown instead of writing BENCHMARKS.md")
    p.add_argument("--json", default=None, help="also dump the raw results here")
    args = p.parse_args(argv)
    command = ("python benchmarks/bench_decoupled.py " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    os.makedirs(DOCS, exist_ok=True)
    content, style = samples()
    config = dc.DecoupledConfig(weights="hed", straight_through=not args.soft_values,
                                reversible_layers=args.reversible_layers)
    raw = {}

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    def publish(name, text):
        if args.no_write:
            print(text)
        else:
            write_section(name, text)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(raw, f, indent=1, default=float)

    def load():
        return f"{os.getloadavg()[0]:.1f}"

    if "transfer" in args.parts:
        for size in args.sizes:
            at_start, partial = load(), []
            log(f"decoupled pipeline at {size}x{size}")

            def on_stage(size=size, at_start=at_start, partial=partial):
                publish(f"decoupled-{size}", "\n".join(_intro(command, at_start) + [
                    f"### Unfinished run at {size}x{size} (stages completed so far)", "", stage_table(partial)]))

            res = run_size(size, content, style, config, log, partial, on_stage, round_trip=not args.no_round_trip)
            save_figures(res)
            raw[f"transfer_{size}"] = {k: v for k, v in res.items() if k != "images"}
            publish(f"decoupled-{size}", markdown_size(res, command, at_start))
    if "shapes" in args.parts:
        at_start, raw["shapes"] = load(), []
        for size in args.sizes:
            for aspect, content_path, style_path in shape_pairs(args.shapes):
                log(f"shape {aspect[1]}:{aspect[0]} at size {size}")
                raw["shapes"].append(run_shape(aspect, size, content_path, style_path, config, log, args.fit))
                publish(args.section or "decoupled-shapes", markdown_shapes(raw["shapes"], command, at_start))
    size = args.sizes[0]
    if "penalty" in args.parts:
        at_start = load()
        raw["penalty"] = run_penalty(size, content, config, args.penalty_steps, log)
        publish("decoupled-penalty", markdown_penalty(raw["penalty"], size, command, at_start))
    if "reversible" in args.parts:
        at_start, raw["reversible"] = load(), []
        section = args.section or "decoupled-reversible" + ("-soft" if args.soft_values else "")
        for rsize, layers, segments in args.reversible:

            def on_stage(done, rsize=rsize, layers=layers):
                publish(section, markdown_reversible(raw["reversible"], command, at_start) + "\n" + "\n".join([
                    f"### Unfinished round trip at {rsize}x{rsize}, {layers} layers (stages completed so far)", "",
                    stage_table(done, show_method=True)]))

            raw["reversible"].append(run_reversible(rsize, content, config, log, layers, segments, on_stage))
            publish(section, markdown_reversible(raw["reversible"], command, at_start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
