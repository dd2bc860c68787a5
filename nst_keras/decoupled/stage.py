"""A stage: setting one layer's features with the earlier layers held where they are.

This module owns what every scheme (projected, reversible, penalty) shares: where the stage sits in a run
(StageContext), its bookkeeping (Stage: passes, time, per-layer errors, convergence samples and
the callback), which feature rows it constrains (`constrained_rows`) and where its path's
segments end (`path_ends`).
"""
import dataclasses
import math
import time
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..progress import DecoupledProgress
from .config import END_SPLITS


@dataclass(frozen=True)
class StageContext:
    """Where a stage sits in a run.

    Attributes:
        kind: 'style', 'content', 'impose', ... (reported, and passed to the callback).
        stage_index: index of the stage in the run, from 0 (for normalize / impose: of their first stage).
        num_stages: stages in the run (None in normalize / impose: as many as layers).
        callback: called with a DecoupledProgress after every corrector iteration or reported SGD step.
        implicit: a normalising stage (the reversible method's implicit segments); imposing stages
            are explicit.
    """

    kind: str = "normalize"
    stage_index: int = 0
    num_stages: int = None
    callback: object = None
    implicit: bool = True

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


class Stage:
    """The bookkeeping of one stage of layer index k: passes and time since its start, per-layer
    errors, convergence samples, and the callback."""

    def __init__(self, net, k, context):
        self.net, self.k, self.context = net, k, context
        self.kind, self.layer = context.kind, net.layers[k]
        self.start_passes = dict(net.passes)
        self.t0 = time.perf_counter()
        self.cpu0 = time.process_time()
        self.history = []
        self.earlier_goal = None

    def start(self, x, target, reference, config):
        """The stage's start: (the current means, layer k's offset, the constrained rows, the end
        goal: earlier layers where they are, layer k at `target`)."""
        f_start = self.net.means(x, self.k)
        self.earlier_goal = f_start
        lo = self.net.offsets[self.k]
        rows = constrained_rows(self.net, self.k, f_start, target, reference.dead, config.dead_tolerance,
                                path_ends=config.reversible)
        goal = f_start.copy()
        goal[lo:] = target
        return f_start, lo, rows, goal

    def passes(self):
        return {key: self.net.passes[key] - self.start_passes[key] for key in self.net.passes}

    def layer_errors(self, f, goal, rows):
        """Relative error per layer over the constrained rows (layers 0..k)."""
        errs = []
        for j in range(self.k + 1):
            sel = rows[(rows >= self.net.offsets[j]) & (rows < self.net.offsets[j + 1])]
            if sel.size == 0:
                errs.append(0.0)
                continue
            num = np.linalg.norm(f[sel] - goal[sel])
            den = max(np.linalg.norm(goal[sel]), 1e-30)
            errs.append(num / den)
        return np.array(errs)

    def report_progress(self, segment, f, final_goal, rows):
        """Record a convergence sample and hand it to the callback."""
        errs = self.layer_errors(f, final_goal, rows)
        set_snr = -20 * math.log10(max(errs[-1], 1e-30))
        earlier = -20 * math.log10(max(errs[:-1].max(), 1e-30)) if self.k else None
        sample = {"stage_index": self.context.stage_index, "stage": self.kind, "layer": self.layer,
                  "segment": segment, "forward": self.passes()["forward"], "reverse": self.passes()["reverse"],
                  "elapsed": time.perf_counter() - self.t0, "snr_db": set_snr, "min_earlier_snr_db": earlier}
        self.history.append(sample)
        if self.context.callback is not None:
            self.context.callback(self._progress(segment, set_snr, earlier, sample["elapsed"]))

    def _progress(self, segment, snr, earlier, elapsed, report=None, image=None):
        return DecoupledProgress(stage=self.kind, layer=self.layer, stage_index=self.context.stage_index,
                                 num_stages=self.context.num_stages, segment=segment, snr_db=snr,
                                 min_earlier_snr_db=earlier if earlier is not None else math.inf,
                                 passes=self.passes(), elapsed=elapsed, report=report, image=image)

    def goal_earlier(self, j, live):
        """The values layer j had at the start of the stage (what it must keep)."""
        return self.earlier_goal[self.net.offsets[j] + live]


def constrained_rows(net, k, start, target, reference_dead, dead_tolerance, path_ends=False):
    """Rows of the stacked feature vector (layers 0..k) that are constrained in stage k.

    Channels dead on the reference are left out everywhere. A channel of layer k that is dead
    at the start of the path (and so has no gradient there) stays constrained: its Jacobian
    row is dropped while it is zero and used once the channel wakes up. With path_ends=True
    (the reversible scheme) a layer-k channel that is dead at the start or at the target is
    left out instead: waking a channel up from exactly zero (or killing it) has no smooth
    path, and leaving out the same channels in both directions keeps the scheme symmetric.
    So is an earlier layer's channel that is dead at the start (left out at its own stage):
    its smoothed row is not zero, but the exact features do not move along it, and that flat
    direction would let the corrector land on another root on the way back.
    """
    rows = []
    for j in range(k + 1):
        live = np.setdiff1d(np.arange(net.channels[j]), reference_dead[net.layers[j]])
        if path_ends:
            lo, hi = net.offsets[j], net.offsets[j + 1]
            ends = np.minimum(start[lo:hi], target) if j == k else start[lo:hi]
            scale = max(float(np.abs(start[lo:hi]).max()), float(np.abs(target).max()) if j == k else 0.0, 1e-30)
            live = live[ends[live] > dead_tolerance * scale]
        rows.append(net.offsets[j] + live)
    return np.concatenate(rows).astype(int)


def path_ends(n, implicit, reversible):
    """Where the path's segments end (s in (0, 1]): n equal segments. Reversible: a normalising
    (implicit) path's first and last segments, where the image moves fastest, are each cut into
    END_SPLITS, and an imposing path mirrors that grid, so that its segments retrace the
    normalising ones in reverse order."""
    if not reversible or n < 1:
        return [(i + 1) / n for i in range(n)]
    cuts = {Fraction(i, n) for i in range(1, n + 1)}
    cuts |= {Fraction(j, n * END_SPLITS) for j in range(1, END_SPLITS)}
    cuts |= {Fraction((n - 1) * END_SPLITS + j, n * END_SPLITS) for j in range(1, END_SPLITS)}
    normalising = [float(c) for c in sorted(cuts)]
    return normalising if implicit else [1 - s for s in reversed([0.0] + normalising[:-1])]
