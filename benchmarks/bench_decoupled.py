"""Decoupled mode: precision, cost and round trip of steps 0-3 on the samples (writes BENCHMARKS.md).

    python benchmarks/bench_decoupled.py [--sizes 128 256] [--penalty-steps 100] [--no-write]

Per size: reference (step 0), style and content normalisation (steps 1-2), imposition of the
style's features on the normalised content (step 3), then the round trip (the content's own
features imposed on its normalised image = a self-transfer); at the first size also the
penalty baseline (the thesis's SGD on summed losses) normalising and re-imposing the content.
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
from nst_keras.image import center_crop, contact_sheet, load_image, save_png  # noqa: E402

DOCS = os.path.join(ROOT, "docs", "decoupled")


def samples():
    content = sorted(glob.glob(os.path.join(ROOT, "samples", "content_*.jpg")))[0]
    style = sorted(glob.glob(os.path.join(ROOT, "samples", "style_*.jpg")))[0]
    return content, style


def _fmt(v, spec=".1f"):
    if v is None:
        return "–"
    return format(v, spec)


def stage_table(stages):
    head = ("| stage | layer | set SNR dB | min earlier SNR dB | max abs cos (projected step) | "
            "max abs cos (segment move) | Jacobians | fwd / rev passes | wall s | CPU s | unconstrained | "
            "out of [0,1] |\n|---|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for s in stages:
        dropped = sum(len(v) for v in (s.get("gradient_dead") or {}).values()) + \
            sum(len(v) for v in (s.get("dependent") or {}).values())
        lines.append(
            f"| {s['stage']} | {s['layer']} | {_fmt(s['set_snr_db'])} | {_fmt(s['min_earlier_snr_db'])} | "
            f"{_fmt(s['max_abs_cos'], '.1e')} | {_fmt(s.get('max_abs_cos_segment_move'), '.1e')} | "
            f"{s.get('jacobians', '–')}{' (+%d splits)' % s['segment_splits'] if s.get('segment_splits') else ''} | "
            f"{s['passes']['forward']} / {s['passes']['reverse']} | {s['wall_time_s']:.1f} | {s['cpu_time_s']:.1f} | "
            f"{len(s['unconstrained_channels'])}/{s['channels']}{' +%d' % dropped if dropped else ''} | "
            f"{100 * s['out_of_box_fraction']:.1f}% (max {s['max_out_of_box']:.2f}) |")
    return "\n".join(lines)


def run_size(size, content_path, style_path, config, log, partial=None, on_stage=None):
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

    norm_style, style_features, r1, h1 = dc.normalize(net, style, reference, config, "style", 0, 3 * n, cb)
    norm_content, content_features, r2, h2 = dc.normalize(net, content, reference, config, "content", n, 3 * n, cb)
    result, r3, h3 = dc.impose(net, norm_content, style_features, reference, config, "impose", 2 * n, 3 * n, cb)
    pipeline_wall = time.perf_counter() - t1 + build
    pipeline_cpu = time.process_time() - c0
    t2 = time.perf_counter()
    back, r4, _ = dc.impose(net, norm_content, content_features, reference, config, "round trip", 0, n, cb)
    rt_wall = time.perf_counter() - t2
    rmse = float(np.linalg.norm(back - content) / np.linalg.norm(content))
    rmse_clipped = float(np.linalg.norm(np.clip(back, 0, 1) - content) / np.linalg.norm(content))
    return {"size": size, "content": os.path.basename(content_path), "style": os.path.basename(style_path),
            "extractor": extractor.describe(), "build_s": build, "reference_s": ref_time,
            "reference": reference.summary(), "stages": r1 + r2 + r3, "round_trip_stages": r4,
            "pipeline_wall_s": pipeline_wall, "pipeline_cpu_s": pipeline_cpu, "round_trip_wall_s": rt_wall,
            "round_trip_rmse": rmse, "round_trip_rmse_clipped": rmse_clipped,
            "totals": dc.totals(r1 + r2 + r3), "history": h1 + h2 + h3,
            "images": {"content": content, "style": style, "norm_style": norm_style,
                       "norm_content": norm_content, "result": result, "back": back}}


def run_penalty(size, content_path, config, steps, log):
    content = center_crop(load_image(content_path), (size, size))
    config = config.replace(size=size, method="penalty", penalty_steps=steps)
    net, _ = dc.build_net(config, (size, size))
    reference = dc.reference_features(net, config.noise_draws, config.seed, config.dead_tolerance)
    log(f"  {size}px penalty baseline, {steps} SGD steps per layer ...")
    t0 = time.perf_counter()
    back, _, rmse, reports = dc.round_trip(net, content, reference, config)
    return {"stages": reports, "round_trip_rmse": rmse, "wall_s": time.perf_counter() - t0, "steps": steps,
            "learning_rate": config.penalty_learning_rate}


def save_figures(res):
    im = res["images"]
    clip = {k: np.clip(v, 0, 1) for k, v in im.items()}
    sheet = contact_sheet([clip["content"], clip["style"], clip["norm_style"], clip["norm_content"], clip["result"]],
                          ["content", "style", "normalised style", "normalised content", "result"], columns=5,
                          cell=res["size"])
    save_png(os.path.join(DOCS, f"transfer_{res['size']}.png"), sheet)
    sheet = contact_sheet([clip["content"], clip["norm_content"], clip["back"]],
                          ["content (= style)", "normalised", "self-transfer"], columns=3, cell=res["size"])
    save_png(os.path.join(DOCS, f"self_transfer_{res['size']}.png"), sheet)


def markdown(results, penalty, command, load):
    names = [os.path.basename(p) for p in samples()]
    out = ["## Decoupled mode", "", f"Command: `{command}`", "",
           "Samples: content `%s`, style `%s`, centre-cropped to squares; bundled VGG16 backbone "
           "(weights `hed`); layers block1..5_conv1 (64+128+256+512+512 channels)." % tuple(names),
           f"Machine load during the run (1-min load average at the start of each size): {load}. Other jobs "
           "shared the 2 cores, so wall times are upper bounds; CPU seconds are this process's own.", ""]
    for r in results:
        t = r["totals"]
        out += [f"### {r['size']}x{r['size']}", "",
                f"- Steps 0-3 (build {r['build_s']:.0f} s, reference {r['reference_s']:.1f} s, three times five "
                f"stages): **{r['pipeline_wall_s'] / 60:.1f} min wall**, {r['pipeline_cpu_s'] / 60:.1f} min CPU; "
                f"{t['forward_passes']} forward and {t['reverse_passes']} reverse-mode passes (Jacobian rows).",
                f"- Lowest SNR of a layer being set: {t['min_set_snr_db']:.1f} dB; lowest SNR of an earlier layer "
                f"at the end of a stage: {t['min_earlier_snr_db']:.1f} dB; largest abs cosine between a projected "
                f"step and an earlier layer's channel gradient: {t['max_abs_cos']:.1e}.",
                f"- Round trip (content normalised, then its own features imposed; {r['round_trip_wall_s']:.0f} s "
                f"for the imposition): relative RMSE **{r['round_trip_rmse']:.3f}** "
                f"({r['round_trip_rmse_clipped']:.3f} after clipping to [0, 1]).", "",
                stage_table(r["stages"]), "", "Round trip, imposition stages:", "",
                stage_table(r["round_trip_stages"]), ""]
        ref = r["reference"]
        out += ["Reference (mean of noise draws): dead channels per layer "
                + ", ".join(f"{k} {len(v['dead_channels'])}" for k, v in ref.items())
                + "; median relative spread over draws "
                + ", ".join(f"{k} {v['relative_spread_median']:.3f}" for k, v in ref.items()) + ".", ""]
    if penalty:
        out += [f"### Penalty baseline ({results[0]['size']}x{results[0]['size']}, content normalised and "
                f"re-imposed)", "",
                f"Plain SGD on the summed losses of layers 1..k, learning rate {penalty['learning_rate']}, "
                f"{penalty['steps']} steps per layer ({penalty['wall_s'] / 60:.1f} min); round-trip relative RMSE "
                f"{penalty['round_trip_rmse']:.3f}.", "", stage_table(penalty["stages"]), ""]
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    p.add_argument("--penalty-steps", type=int, default=100)
    p.add_argument("--no-penalty", action="store_true")
    p.add_argument("--no-write", action="store_true", help="print the markdown instead of writing BENCHMARKS.md")
    p.add_argument("--json", default=None, help="also dump the raw results here")
    args = p.parse_args(argv)
    command = "python benchmarks/bench_decoupled.py " + " ".join(argv if argv is not None else sys.argv[1:])
    os.makedirs(DOCS, exist_ok=True)
    content, style = samples()
    config = dc.DecoupledConfig(weights="hed")

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    results, penalty, loads, partial = [], None, [], []

    def publish():
        text = markdown(results, penalty, command.strip(), ", ".join(loads))
        if partial:
            text += ("\n\n### Unfinished run at %dx%d (stages completed so far)\n\n" % (size, size)
                     + stage_table(partial))
        if args.no_write:
            print(text)
        else:
            write_section("decoupled", text)
        if args.json:
            slim = {"results": [{k: v for k, v in r.items() if k != "images"} for r in results], "penalty": penalty}
            with open(args.json, "w") as f:
                json.dump(slim, f, indent=1, default=float)

    for i, size in enumerate(args.sizes):
        loads.append(f"{size}px {os.getloadavg()[0]:.1f}")
        log(f"decoupled pipeline at {size}x{size}")
        partial.clear()
        res = run_size(size, content, style, config, log, partial, publish)
        partial.clear()
        save_figures(res)
        results.append(res)
        publish()
        if i == 0 and not args.no_penalty:
            penalty = run_penalty(size, content, config, args.penalty_steps, log)
            publish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
