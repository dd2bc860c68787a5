"""The batch driver: the Ray runtime, one BatchWorker actor per worker, the work list, retries,
the manifest and the sweep sheet.

Workers write each output atomically under a name derived from its inputs, so a retry or a
re-run is idempotent; only this driver appends to OUTDIR/manifest.jsonl (one JSON line per
item finished in this run). A worker lost with its node or process is restarted by Ray
(MAX_RESTARTS) and its call re-run there (TASK_RETRIES); if that fails too, the driver hands
the item to another worker, SUBMISSIONS times at most: an item is attempted at most
MAX_ATTEMPTS times, then recorded as failed.
"""
import json
import math
import os
import time

from .plan import format_value
from .worker import BatchWorker

MAX_RESTARTS = 2
TASK_RETRIES = 1
SUBMISSIONS = 2
MAX_ATTEMPTS = SUBMISSIONS * (1 + TASK_RETRIES)
MANIFEST = "manifest.jsonl"


def start_ray(address=None, workers=None, cpus_per_worker=1.0, dashboard=False, verbose=False):
    """Connect to the cluster at `address`, or start a local runtime (dashboard off unless asked,
    and then bound to 127.0.0.1; no usage statistics sent). Returns the ray module."""
    import logging

    import ray

    level = logging.INFO if verbose else logging.ERROR
    if address:
        ray.init(address=address, logging_level=level, log_to_driver=verbose)
        return ray
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    num_cpus = math.ceil(workers * cpus_per_worker) if workers else os.cpu_count()
    ray.init(num_cpus=max(1, num_cpus), include_dashboard=dashboard, dashboard_host="127.0.0.1",
             logging_level=level, log_to_driver=verbose)
    return ray


def default_workers(ray, local, gpus_per_task):
    """(workers, GPUs per worker) when --workers is not given: one worker per GPU (a whole GPU
    each unless gpus_per_task says otherwise), else 1 on a local CPU machine (TensorFlow already
    uses every core) and one per node on a cluster."""
    gpus = ray.cluster_resources().get("GPU", 0)
    if gpus:
        gpus_per_task = gpus_per_task or 1.0
        return max(1, int(gpus // gpus_per_task)), gpus_per_task
    return (1 if local else max(1, sum(1 for n in ray.nodes() if n.get("Alive")))), gpus_per_task


def run_items(ray, items, inputs, workers, gpus_per_task=0.0, cpus_per_worker=1.0, callback=None, notify=None,
              verbose=False):
    """Stylise `items` (plan.Item) on `workers` actors; inputs[i] is item i's inputs record.

    Appends one manifest record per item to its OUTDIR/manifest.jsonl as it finishes and calls
    callback(record) after each. Returns the records in the order they finished.
    """
    remote = ray.remote(BatchWorker)
    actors = [remote.options(num_cpus=cpus_per_worker, num_gpus=gpus_per_task, max_restarts=MAX_RESTARTS,
                             max_task_retries=TASK_RETRIES, scheduling_strategy="SPREAD").remote(verbose)
              for _ in range(workers)]
    queue = list(range(len(items)))[::-1]  # popped from the end: items in order
    submissions = [0] * len(items)
    idle, pending, records, said = list(actors), {}, [], set()

    def finish(index, result, attempts):
        record = manifest_record(items[index], inputs[index], result, attempts)
        append_manifest(os.path.join(os.path.dirname(items[index].output), MANIFEST), record)
        records.append(record)
        for message in result.get("messages", ()):
            if notify and message not in said:
                said.add(message)
                notify(message)
        if callback:
            callback(record)

    while queue or pending:
        while queue and idle:
            index, actor = queue.pop(), idle.pop(0)
            submissions[index] += 1
            pending[actor.run.remote(items[index], inputs[index])] = (index, actor)
        if not pending:  # every worker is gone for good
            for index in reversed(queue):
                finish(index, {"status": "failed", "error": "every worker was lost"}, submissions[index])
            break
        ready, _ = ray.wait(list(pending), num_returns=1)
        index, actor = pending.pop(ready[0])
        try:
            result = ray.get(ready[0])
        except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                ray.exceptions.ObjectLostError) as exc:
            if not isinstance(exc, ray.exceptions.ActorDiedError):
                idle.append(actor)  # unavailable for now; Ray restarts it
            if submissions[index] < SUBMISSIONS:
                queue.append(index)
            else:
                finish(index, {"status": "failed", "error": f"worker lost {MAX_ATTEMPTS} times: "
                               f"{type(exc).__name__}"}, submissions[index])
            continue
        idle.append(actor)
        finish(index, result, submissions[index])
    for actor in actors:
        ray.kill(actor)
    return records


def manifest_record(item, inputs, result, attempts):
    """One manifest line: status, output, inputs, sweep point, parameters, seconds, final loss,
    worker, attempts, error."""
    return {"status": result.get("status", "failed"), "output": item.name, "inputs": inputs,
            "sweep": {field: json.loads(json.dumps(value)) for field, value in item.point},
            "parameters": json.loads(json.dumps(item.config.to_dict(), default=str)),
            "seconds": result.get("seconds"), "final_loss": result.get("final_loss"),
            "worker": result.get("worker"), "attempts": attempts, "reused": result.get("reused", False),
            "error": result.get("error"), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def record_unrecorded(items, inputs, sidecars):
    """Append a 'done' record for each finished item the manifest lacks (its result never reached
    the driver: the batch was interrupted after the worker wrote it), so that every finished
    output has one. sidecars[i] is item i's sidecar dict. Returns how many were added."""
    added = 0
    by_dir = {}
    for item, record, sidecar in zip(items, inputs, sidecars):
        path = os.path.join(os.path.dirname(item.output), MANIFEST)
        if path not in by_dir:
            by_dir[path] = {r.get("output") for r in read_manifest(path) if r.get("status") == "done"}
        if item.name not in by_dir[path]:
            result = {"status": "done", "seconds": sidecar.get("seconds"), "final_loss": sidecar.get("final_loss"),
                      "worker": sidecar["batch"].get("worker"), "reused": True}
            append_manifest(path, manifest_record(item, record, result, attempts=None))
            by_dir[path].add(item.name)
            added += 1
    return added


def append_manifest(path, record):
    """Append one JSON line in a single write (a reader skips a torn last line)."""
    line = (json.dumps(record, sort_keys=True, default=str) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_manifest(path):
    """The manifest's records (lines that do not parse are skipped)."""
    records = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    records.append(json.loads(line))
                except ValueError:
                    pass
    return records


def remove_temporary_files(outdir):
    """Delete the temporary files of writes cut short (a worker killed mid-write); the finished
    outputs were never touched by them. Returns how many were removed."""
    removed = 0
    for name in os.listdir(outdir):
        if name.startswith(".tmp-") and os.path.splitext(name)[1] in (".png", ".json"):
            os.remove(os.path.join(outdir, name))
            removed += 1
    return removed


def write_sweep_sheet(path, items, sweep, cell=160):
    """A labelled grid of a sweep's outputs: one column per value of the last swept field, one
    row per content x style x combination of the other fields; a missing output is a grey cell."""
    from PIL import Image, ImageDraw, ImageFont

    from ..image import atomic_write

    columns = [value for value in sweep[-1][1]]
    rows, cells = [], {}
    pairs = list(dict.fromkeys((item.content, item.style) for item in items))
    for item in items:
        other = tuple((f, v) for f, v in item.point[:-1])
        row = ((item.content, item.style), other)
        if row not in rows:
            rows.append(row)
        cells[row, repr(item.point[-1][1])] = item.output
    font = ImageFont.load_default(size=max(11, cell // 12))

    def row_label(row):
        (content, style), other = row
        parts = [f"{f}={format_value(v)}" for f, v in other]
        if len(pairs) > 1:
            parts.insert(0, f"{os.path.basename(content)} / {os.path.basename(style)}")
        return "\n".join(parts)

    def column_label(value):
        text = format_value(value)
        if probe.textlength(text, font=font) > cell - 8:  # a long layer list: one element per line
            text = text.replace("+", "+\n")
        return text

    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    labels = [row_label(r) for r in rows]
    heads = [column_label(v) for v in columns]
    line = font.size + 4
    left = 8 + max([probe.multiline_textbbox((0, 0), t, font=font)[2] for t in labels if t] + [0])
    top = line + 6 + max(probe.multiline_textbbox((0, 0), t, font=font)[3] for t in heads)
    sheet = Image.new("RGB", (left + cell * len(columns), top + cell * len(rows)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 2), f"columns: {sweep[-1][0]}", fill=(0, 0, 0), font=font)
    for j, head in enumerate(heads):
        draw.multiline_text((left + j * cell + 4, line + 2), head, fill=(0, 0, 0), font=font)
    for i, row in enumerate(rows):
        y = top + i * cell
        draw.multiline_text((4, y + 4), labels[i], fill=(0, 0, 0), font=font)
        for j, value in enumerate(columns):
            output = cells.get((row, repr(value)))
            x = left + j * cell
            if output and os.path.exists(output):
                with Image.open(output) as img:
                    thumb = img.convert("RGB")
                scale = (cell - 4) / max(thumb.size)
                thumb = thumb.resize((max(1, round(thumb.width * scale)), max(1, round(thumb.height * scale))),
                                     Image.LANCZOS)
                sheet.paste(thumb, (x + (cell - thumb.width) // 2, y + (cell - thumb.height) // 2))
            else:
                draw.rectangle((x + 2, y + 2, x + cell - 3, y + cell - 3), fill=(200, 200, 200))
                draw.text((x + 8, y + cell // 2), "failed", fill=(0, 0, 0), font=font)
    atomic_write(path, lambda tmp: sheet.save(tmp, format="PNG"))


__all__ = ["start_ray", "default_workers", "run_items", "manifest_record", "record_unrecorded", "append_manifest",
           "read_manifest",
           "remove_temporary_files", "write_sweep_sheet", "MAX_ATTEMPTS", "MAX_RESTARTS", "TASK_RETRIES",
           "SUBMISSIONS", "MANIFEST"]
