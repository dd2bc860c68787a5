"""The work of a batch, without running it: inputs expanded, the sweep grid, output names and
what is already finished. No Ray, no TensorFlow.

An item is one content x one style x one sweep point, written to
`OUTDIR/{content}__{style}[__{field}-{value}...].png` with its JSON sidecar. The sidecar is
written last, so it marks the item finished; its `batch` record (the requested config and the
inputs' SHA-256) is what a re-run compares before skipping the item.
"""
import dataclasses
import glob
import itertools
import json
import os
import re
from dataclasses import dataclass

from ..errors import UserError, check_choice
from ..gatys.config import GatysConfig

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# Inside one sweep value, '+' separates the elements of a list field (style_layers, weights),
# because ',' separates the values: --sweep style_layers=block1_conv1+block2_conv1,block3_conv1.
LIST_SEPARATOR = "+"


@dataclass(frozen=True)
class Item:
    """One output of a batch."""

    content: str        # path
    style: str          # path
    point: tuple        # ((field, value), ...) of the sweep, in --sweep order; () without a sweep
    config: GatysConfig
    output: str         # OUTDIR/NAME.png

    @property
    def name(self):
        return os.path.basename(self.output)

    @property
    def sidecar(self):
        return os.path.splitext(self.output)[0] + ".json"


def expand_inputs(specs, role, outdir=None):
    """Files, directories (their images, sorted by name) and glob patterns, in the order given,
    without duplicates. Raises UserError for a path that does not exist or a pattern or folder
    that yields no file."""
    paths = []
    for spec in specs:
        if os.path.isdir(spec):
            if outdir and os.path.abspath(spec) == os.path.abspath(outdir):
                raise UserError(f"{role} folder '{spec}' is the output folder; accepted: a folder other than -o")
            found = sorted(os.path.join(spec, n) for n in os.listdir(spec)
                           if not n.startswith(".") and os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS
                           and os.path.isfile(os.path.join(spec, n)))
            what = f"folder '{spec}' holds no image ({', '.join(IMAGE_EXTENSIONS)})"
        elif os.path.exists(spec):
            found, what = [spec], ""
        elif any(c in spec for c in "*?["):
            found = sorted(p for p in glob.glob(spec, recursive=True) if os.path.isfile(p))
            what = f"pattern '{spec}' matches no file"
        else:
            raise UserError(f"{role} '{spec}' does not exist; accepted: an image file, a folder or a glob pattern")
        if not found:
            raise UserError(f"{role} {what}; accepted: an image file, a folder of images or a matching pattern")
        paths += found
    return list(dict.fromkeys(paths))


def parse_sweep(texts, value_parsers):
    """[(field, (value, ...)), ...] from `--sweep FIELD=V1,V2` texts.

    value_parsers maps each GatysConfig field to a function of one value's text (the CLI's flag
    types); in a list field, LIST_SEPARATOR separates the elements. 'none' sets a field whose
    default is None back to it.
    """
    fields = {f.name: f for f in dataclasses.fields(GatysConfig)}
    sweep = []
    for text in texts:
        field, sep, values = text.partition("=")
        field = field.strip().replace("-", "_")
        if not sep or not values.strip():
            raise UserError(f"--sweep '{text}'; accepted: FIELD=V1,V2,... (e.g. style_weight=1e-3,1e-2)")
        check_choice("--sweep field", field, sorted(fields))
        if field in dict(sweep):
            raise UserError(f"--sweep {field} is given twice; accepted: each field once")
        parsed = []
        for value in values.split(","):
            value = value.strip()
            if value.lower() == "none" and fields[field].default is None:
                parsed.append(None)
                continue
            if fields[field].type is tuple:
                value = value.replace(LIST_SEPARATOR, ",")
            try:
                parsed.append(value_parsers[field](value))
            except Exception as exc:  # the flag's own type function: ValueError, ArgumentTypeError
                raise UserError(f"--sweep {field} value '{value}' cannot be read ({exc}); accepted: values as "
                                f"--{field.replace('_', '-')} takes them, separated by ','"
                                + (f", list elements by '{LIST_SEPARATOR}'" if fields[field].type is tuple else "")
                                ) from None
        if len(set(map(repr, parsed))) != len(parsed):
            raise UserError(f"--sweep {field} repeats a value; accepted: distinct values")
        sweep.append((field, tuple(parsed)))
    return sweep


def sweep_points(sweep):
    """Every combination of the sweep's values, as ((field, value), ...), first field slowest."""
    if not sweep:
        return [()]
    return [tuple(zip([f for f, _ in sweep], combo)) for combo in itertools.product(*[v for _, v in sweep])]


def format_value(value):
    """A sweep value as it appears in names and labels: 1e-3 -> '0.001', a list -> 'a+b'."""
    if isinstance(value, (tuple, list)):
        return LIST_SEPARATOR.join(format_value(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return "none" if value is None else str(value)


def _safe(text):
    return re.sub(r"[^A-Za-z0-9._+-]", "_", text)


def output_name(content, style, point):
    """'{content}__{style}[__{field}-{value}...].png' from the inputs' file names."""
    parts = [os.path.splitext(os.path.basename(content))[0], os.path.splitext(os.path.basename(style))[0]]
    parts += [f"{field}-{format_value(value)}" for field, value in point]
    return "__".join(_safe(p) for p in parts) + ".png"


def build_items(contents, styles, config, sweep, outdir):
    """Every content x style x sweep point as an Item, each config validated. Raises UserError
    when two items would share an output name (the same file name in two folders)."""
    items, names = [], {}
    points = sweep_points(sweep)
    configs = [config.replace(**dict(point)).validate() for point in points]
    for content in contents:
        for style in styles:
            for point, item_config in zip(points, configs):
                name = output_name(content, style, point)
                if name in names:
                    raise UserError(f"{names[name]} and {(content, style)} would both be written to {name}; "
                                    "accepted: inputs whose file names differ (rename one, or run two batches)")
                names[name] = (content, style)
                items.append(Item(content, style, point, item_config, os.path.join(outdir, name)))
    return items


def batch_record(item, inputs):
    """What a finished item's sidecar and PNG carry under 'batch': the requested config (before
    any weights fallback), the sweep point and the inputs."""
    return {"config": _as_json(item.config.to_dict()), "sweep": {f: _as_json(v) for f, v in item.point},
            "inputs": inputs}


def _as_json(value):
    return json.loads(json.dumps(value, default=str))


def item_status(item, inputs):
    """('done', sidecar) when the PNG and its sidecar exist and were made with this config from
    these inputs; ('todo', None) when either file is missing; ('conflict', reason) when a
    finished output was made otherwise (a batch never rewrites it)."""
    if not (os.path.isfile(item.output) and os.path.isfile(item.sidecar)):
        return "todo", None
    try:
        with open(item.sidecar, encoding="utf-8") as f:
            sidecar = json.load(f)
        record = sidecar["batch"]
    except (OSError, ValueError, KeyError, TypeError):
        return "conflict", f"{item.sidecar} is not a batch sidecar"
    if record.get("config") != _as_json(item.config.to_dict()):
        old = record.get("config") or {}
        changed = [k for k, v in _as_json(item.config.to_dict()).items() if old.get(k) != v]
        return "conflict", f"{item.name} was made with other parameters ({', '.join(changed[:3])})"
    for role in ("content", "style"):
        if (record.get("inputs") or {}).get(role, {}).get("sha256") != inputs[role]["sha256"]:
            return "conflict", f"{item.name} was made from another {role} file"
    return "done", sidecar


__all__ = ["Item", "IMAGE_EXTENSIONS", "LIST_SEPARATOR", "expand_inputs", "parse_sweep", "sweep_points",
           "format_value", "output_name", "build_items", "batch_record", "item_status"]
