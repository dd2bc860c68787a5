"""nst-batch / scripts/batch.py: stylise folders and parameter sweeps on Ray, locally or on a cluster."""
import os
import sys

from ..errors import UserError
from ..gatys.config import GatysConfig
from .common import (Parser, add_common_flags, config_flags, config_from_args, describe_input, quiet_start, run_main,
                     say)

PROG = "nst-batch"
INSTALL = "pip install 'nst_keras[batch]' (or: pip install ray)"


def _gatys_actions():
    """(group title, [argparse actions]) of nst-gatys for every GatysConfig field: one set of flags."""
    from .gatys import build_parser as gatys_parser

    fields = set(config_flags(GatysConfig))
    for group in gatys_parser()._action_groups:
        actions = [a for a in group._group_actions if a.dest in fields]
        if actions:
            yield group.title, actions


def build_parser():
    p = Parser(prog=PROG, description="Stylise every CONTENT with every STYLE (and every --sweep point) on Ray; "
                                      "outputs OUTDIR/{content}__{style}[__{field}-{value}...].png, their JSON "
                                      "sidecars and OUTDIR/manifest.jsonl. A re-run skips finished outputs.")
    p.add_argument("content", nargs="+", help="content images: files, folders (their images, sorted) or glob patterns")
    p.add_argument("--styles", nargs="+", required=True, metavar="STYLE",
                   help="style images: files, folders or glob patterns (each is used alone)")
    add_common_flags(p, output_help="output folder (created if missing; required)")
    p.set_defaults(output=None)
    value_parsers = {}
    for title, actions in _gatys_actions():
        g = p.add_argument_group(title)
        for a in actions:
            kwargs = {"dest": a.dest, "default": a.default, "help": a.help, "metavar": a.metavar}
            for key in ("type", "nargs", "const", "choices"):
                if getattr(a, key) is not None:
                    kwargs[key] = getattr(a, key)
            g.add_argument(*a.option_strings, **kwargs)
            value_parsers[a.dest] = _value_parser(a)
    g = p.add_argument_group("batch")
    g.add_argument("--sweep", action="append", default=[], metavar="FIELD=V1,V2",
                   help="run every value of a GatysConfig field (repeatable: the grid of all combinations); "
                        "list values join their elements with '+': --sweep style_layers=block1_conv1+block2_conv1,"
                        "block3_conv1. Writes OUTDIR/sweep.png, labelled by the values. Wins over the field's flag")
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help="Ray workers (default: one per GPU, else 1 on a local CPU machine, where TensorFlow "
                        "already uses every core, and one per node on a cluster)")
    g.add_argument("--ray-address", metavar="ADDR", help="join this Ray cluster (default: a local runtime)")
    g.add_argument("--gpus-per-task", type=float, default=0.0, metavar="G", help="GPUs Ray gives each worker")
    g.add_argument("--cpus-per-worker", type=float, default=1.0, metavar="C", help="CPUs Ray reserves per worker")
    g.add_argument("--dashboard", action="store_true",
                   help="start Ray's dashboard on 127.0.0.1 with the local runtime (needs ray[default])")
    g.add_argument("--dry-run", action="store_true", help="list the work and predict its time; run nothing")
    p.value_parsers = value_parsers
    return p


def _value_parser(action):
    """One sweep value's text -> the field's value, as the flag reads it."""
    if action.nargs == "+":
        return lambda text: tuple(v for v in text.split(",") if v)
    return action.type or str


def _run(argv):
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet_start(args.verbose)
    if not args.output:
        raise UserError("missing -o OUTDIR; accepted: -o FOLDER (created if missing)")
    outdir = args.output
    if os.path.exists(outdir) and not os.path.isdir(outdir):
        raise UserError(f"-o '{outdir}' is a file; accepted: a folder (created if missing)")
    if not os.path.isdir(os.path.dirname(os.path.abspath(outdir))):
        raise UserError(f"-o '{outdir}': its parent folder does not exist; accepted: a folder in an existing one")
    for name, value in (("--workers", args.workers), ("--gpus-per-task", args.gpus_per_task),
                        ("--cpus-per-worker", args.cpus_per_worker)):
        if value is not None and not value >= (1 if name == "--workers" else 0):
            raise UserError(f"{name} {value}; accepted: " + ("a whole number >= 1" if name == "--workers"
                                                             else "a number >= 0"))
    from ..batch.plan import build_items, expand_inputs, item_status, parse_sweep
    from ..models import validate_layers

    config = config_from_args(GatysConfig, args)
    sweep = parse_sweep(args.sweep, parser.value_parsers)
    contents = expand_inputs(args.content, "content", outdir)
    styles = expand_inputs(args.styles, "style", outdir)
    items = build_items(contents, styles, config, sweep, outdir)
    for item in items:
        validate_layers(item.config.model, list(item.config.content_layers) + list(item.config.style_layers))
    described = {path: describe_input(path, args.record_paths) for path in dict.fromkeys(contents + styles)}
    inputs = [{"content": described[item.content], "style": described[item.style]} for item in items]
    statuses = [item_status(item, record) for item, record in zip(items, inputs)]
    conflicts = [reason for status, reason in statuses if status == "conflict"]
    if conflicts:
        raise UserError(f"{len(conflicts)} finished output(s) in '{outdir}' do not match this batch, e.g. "
                        f"{conflicts[0]}; accepted: another -o folder, or delete them to redo them")
    todo = [i for i, (status, _) in enumerate(statuses) if status == "todo"]
    if args.dry_run:
        _dry_run(items, statuses, args)
        return 0
    try:
        import ray  # noqa: F401
    except ImportError:
        raise UserError(f"Ray is not installed; install it with: {INSTALL}") from None
    if args.dashboard and not args.ray_address:
        try:
            import aiohttp  # noqa: F401  (what ray[default] adds for the dashboard)
        except ImportError:
            raise UserError("--dashboard needs Ray's dashboard; install it with: pip install 'ray[default]'") \
                from None
    os.makedirs(outdir, exist_ok=True)
    from ..batch.run import record_unrecorded, remove_temporary_files

    remove_temporary_files(outdir)  # left by a worker killed mid-write in an earlier run

    finished = [i for i, (status, _) in enumerate(statuses) if status == "done"]
    record_unrecorded([items[i] for i in finished], [inputs[i] for i in finished], [statuses[i][1] for i in finished])
    skipped = len(items) - len(todo)
    if not todo:
        say(f"{PROG}: 0 done, {skipped} skipped, 0 failed (every output is finished)", args.quiet)
        _sweep_sheet(outdir, items, sweep, rewrite=False)
        return 0
    return _execute(args, outdir, items, inputs, todo, sweep, skipped)


def _execute(args, outdir, items, inputs, todo, sweep, skipped):
    from ..batch import run

    counts = {"done": 0, "failed": 0}
    bar = _bar(len(todo), args.quiet)

    def callback(record):
        counts[record["status"]] = counts.get(record["status"], 0) + 1
        bar.update(1)
        bar.set_postfix_str(f"done {counts['done']}, failed {counts['failed']}")
        if record["status"] == "failed" and not args.quiet:
            bar.write(f"{PROG}: {record['output']} failed: {record['error']}", file=sys.stderr)

    notify = lambda message: bar.write(message, file=sys.stderr)  # noqa: E731  (silent when quiet)
    ray = run.start_ray(args.ray_address, args.workers, args.cpus_per_worker, args.dashboard, args.verbose)
    try:
        workers, gpus = (args.workers, args.gpus_per_task) if args.workers else \
            run.default_workers(ray, not args.ray_address, args.gpus_per_task)
        run.run_items(ray, [items[i] for i in todo], [inputs[i] for i in todo], workers, gpus,
                      args.cpus_per_worker, callback=callback, notify=notify, verbose=args.verbose)
    except KeyboardInterrupt:
        bar.close()
        print(f"{PROG}: interrupted: {counts['done']} done, {skipped} skipped, {counts['failed']} failed; "
              "run the same command again to continue", file=sys.stderr)
        return 130
    finally:
        bar.close()
        ray.shutdown()
        run.remove_temporary_files(outdir)
    _sweep_sheet(outdir, items, sweep, rewrite=True)
    say(f"{PROG}: {counts['done']} done, {skipped} skipped, {counts['failed']} failed "
        f"({os.path.join(outdir, run.MANIFEST)})", args.quiet)
    return 1 if counts["failed"] else 0


def _bar(total, quiet):
    if quiet:
        from .common import progress_bar

        return _Quiet(progress_bar(total, True, PROG))
    from tqdm import tqdm

    return tqdm(total=total, desc=PROG, unit="image", file=sys.stderr, dynamic_ncols=True)


class _Quiet:
    """tqdm's interface, silent."""

    def __init__(self, bar):
        self._bar = bar

    def __getattr__(self, name):
        return getattr(self._bar, name)

    def write(self, *args, **kwargs):
        pass


def _sweep_sheet(outdir, items, sweep, rewrite):
    """OUTDIR/sweep.png for a sweep: rewritten after a run that computed something, else only if missing."""
    if not sweep:
        return
    path = os.path.join(outdir, "sweep.png")
    if rewrite or not os.path.exists(path):
        from ..batch.run import write_sweep_sheet

        write_sweep_sheet(path, items, sweep)


def _dry_run(items, statuses, args):
    """Each item with its status and predicted time (gatys.plan_run), then the totals."""
    from PIL import Image

    from ..gatys.plan import plan_run

    total, shapes = 0.0, {}
    for item, (status, _) in zip(items, statuses):
        if item.content not in shapes:
            try:
                with Image.open(item.content) as img:
                    w, h = img.size
                    if img.getexif().get(0x0112) in (5, 6, 7, 8):  # EXIF rotation by 90 degrees
                        w, h = h, w
                shapes[item.content] = (h, w)
            except Exception as exc:  # noqa: BLE001 - reported, as the run would record it
                shapes[item.content] = f"unreadable ({type(exc).__name__})"
        shape = shapes[item.content]
        if status == "done":
            print(f"skip  {item.name} (finished)")
            continue
        if isinstance(shape, str):
            print(f"run   {item.name}: content {shape}, would fail")
            continue
        plan = plan_run(shape, item.config)
        total += plan["seconds"]
        print(f"run   {item.name}: {plan['shape'][1]}x{plan['shape'][0]}, ~{plan['seconds']:.0f} s")
    runs = sum(1 for s, _ in statuses if s != "done")
    workers = args.workers or 1
    print(f"{len(items)} items: {runs} to run, {len(items) - runs} finished; predicted ~{total / 60:.1f} min on one "
          f"worker" + (f", ~{total / 60 / workers:.1f} min on {workers} workers that do not share cores"
                       if workers > 1 else "") + " (network loading not included)")


def main(argv=None):
    """Entry point; returns the exit code (0 ok, 1 an item failed, 2 bad input, 130 interrupted)."""
    return run_main(_run, argv, PROG)


if __name__ == "__main__":
    sys.exit(main())
