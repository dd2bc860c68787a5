"""Progress records of both modes, and what the CLIs make of them: loss histories, plots, contact sheets.

The library reports through a callback that receives one record per iteration
(GatysProgress) or corrector iteration (DecoupledProgress); a callback that returns True stops
the run, which keeps what it has finished. Plots use matplotlib's object API on an Agg canvas,
so a caller's pyplot backend is never switched.
"""
import csv
import io
import os
from dataclasses import dataclass, field

import numpy as np

from .errors import UserError
from .image import atomic_write, contact_sheet, save_json, save_png

HISTORY_FORMATS = (".csv", ".json")


@dataclass
class GatysProgress:
    """One Gatys-mode optimiser iteration, handed to the callback."""

    iteration: int          # over all scales (and tiles), from 1
    total_iterations: int
    scale: int              # index of the current scale, from 0
    num_scales: int
    shape: tuple            # (h, w) of the current scale
    loss: float             # weighted total, unscaled
    terms: dict             # weighted content, style and tv terms
    evaluations: int        # loss-and-gradient evaluations so far
    elapsed: float          # seconds since the start
    image_fn: object = field(repr=False, default=None)
    record: dict = field(repr=False, default=None)  # this iteration's entry of the run's history

    @property
    def image(self):
        """The current image as the result would be if the run ended here: float32 [H, W, 3] in
        [0, 1] at the current scale, with the content's colours restored where the run restores
        them (computed on demand)."""
        return self.image_fn()


@dataclass
class DecoupledProgress:
    """One decoupled-mode corrector iteration (projected, reversible) or SGD step (penalty)."""

    stage: str              # 'style', 'content' or 'impose' (or 'normalize' / 'impose' in the parts)
    layer: str
    stage_index: int        # over the whole run, from 0
    num_stages: int
    segment: int            # path segment (projected) or step (penalty)
    snr_db: float           # SNR of the layer being set against its final target
    min_earlier_snr_db: float
    passes: dict            # {'forward': n, 'reverse': n} so far in this stage
    elapsed: float          # seconds since the start of the stage
    report: dict = None     # the stage's report, on the last call of a stage only
    image: np.ndarray = None  # the image at the end of the stage, float64 [H, W, 3] (last call only)


class GatysTracker:
    """The history and the callback of one Gatys-mode run, over all its passes (scales, tiles).

    Args:
        callback: called with a GatysProgress after every iteration (or None); True stops the run.
        total_iterations, num_scales: the run's plan, for the progress records.
        terms: names of the weighted loss terms, in the evaluator's order.
        finish: image -> image as the run finishes its result (clipping, colours), applied to
            every progress image.
    """

    def __init__(self, callback, total_iterations, num_scales, terms, finish=None):
        import time

        self._clock = time.perf_counter
        self.start = self._clock()
        self.callback, self.total_iterations, self.num_scales, self.terms = (
            callback, total_iterations, num_scales, tuple(terms))
        self.finish = finish or (lambda image: image)
        self.history = []
        self.iteration = 0
        self.evaluations = 0  # of finished passes

    def step(self, terms, evaluator, scale, shape, image_fn, tile=None):
        """Record one iteration of a pass; returns True if the callback asks to stop."""
        self.iteration += 1
        record = {"iteration": self.iteration, "scale": scale}
        if tile is not None:
            record["tile"] = tile
        record.update({"height": shape[0], "width": shape[1], "loss": float(terms.sum()),
                       **{k: float(v) for k, v in zip(self.terms, terms)},
                       "evaluations": self.evaluations + evaluator.evaluations,
                       "elapsed": self._clock() - self.start})
        self.history.append(record)
        if self.callback is None:
            return False
        return bool(self.callback(GatysProgress(
            self.iteration, self.total_iterations, scale, self.num_scales, tuple(shape), record["loss"],
            dict(zip(self.terms, map(float, terms))), record["evaluations"], record["elapsed"],
            lambda: self.finish(image_fn()), record)))

    def end_pass(self, evaluator):
        """Count a finished pass's evaluations."""
        self.evaluations += evaluator.evaluations

    @property
    def seconds(self):
        return self._clock() - self.start


def new_figure(figsize, nrows=1, ncols=1, dpi=100):
    """A matplotlib Figure with an Agg canvas and its axes array [nrows, ncols], outside pyplot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def save_figure(path, fig, dpi=None):
    """Write a figure as PNG atomically."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))


def check_history_path(path):
    if os.path.splitext(path)[1].lower() not in HISTORY_FORMATS:
        raise UserError(f"loss log '{path}' has an unknown extension; accepted: {', '.join(HISTORY_FORMATS)}")


def write_history(path, history):
    """Write per-iteration records (dicts) as CSV or JSON, by extension.

    CSV columns are the union of the records' keys in order of first appearance (a tiled run's
    tile records add a 'tile' column); a record without a column leaves it empty.
    """
    check_history_path(path)
    if path.lower().endswith(".json"):
        save_json(path, history)
        return
    buffer = io.StringIO()
    if history:
        fields = list(dict.fromkeys(key for record in history for key in record))
        writer = csv.DictWriter(buffer, fieldnames=fields)
        writer.writeheader()
        writer.writerows(history)

    def write(tmp):
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(buffer.getvalue())
    atomic_write(path, write)


def plot_curves(path, curves, title, ylabel="loss", xlabel="iteration", log=True):
    """Plot {label: (xs, ys)} to a PNG (Agg canvas; pyplot's backend is left alone)."""
    fig, axes = new_figure((7, 4))
    ax = axes[0, 0]
    for label, (xs, ys) in curves.items():
        ax.plot(xs, ys, label=label)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(path, fig)


def plot_history(path, history, title="Gatys-mode loss"):
    """Total and per-term loss against iteration; scale changes are visible as steps."""
    xs = [h["iteration"] for h in history]
    curves = {key: (xs, [max(h[key], 1e-30) for h in history]) for key in ("loss", "content", "style", "tv")}
    plot_curves(path, curves, title)


def write_contact_sheet(path, images, labels):
    """Save checkpoint images side by side with their labels."""
    save_png(path, contact_sheet(images, labels))
