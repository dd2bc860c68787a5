"""The final polish: the image as it will be saved keeps the features the imposition gave it.

The imposition leaves pixels outside [0, 1] (up to a few percent, by up to ~0.5), and clipping
them throws features away (64x64, three layers: 86.8 dB -> 41.2 dB at block1). The polish starts
from the clipped image and brings every layer's means back to those of the unclipped result
with the projected corrector (min-norm steps on the stacked rows of all layers, one path segment)
and the pixel bounds as an active set: pixels at a bound when a Jacobian is taken are held
(their columns zeroed), every trial point is clipped to [0, 1]. Its last word is the 8-bit
rounding of the PNG writer, chosen value by value to keep the features (`round_to_features`);
the SNRs it reports as saved are those of that image.

Why not polish towards the style's recorded features c_1..c_K of every layer at once: they were
recorded at different depths of the style's normalisation, and together they are not reachable
(64x64, two layers: the corrector stalls at 11 dB after 72 Jacobians, while the same start
reaches the style's own features of both layers at 82 dB with 5). The imposition holds only the
layers below the one it sets, so the result carries c_1 at block1 and the deeper layers drift
(docs/decoupled/NUMERICS.md, "The saved image").
"""
import time

import numpy as np

from ..image import to_uint8
from .projected import ProjectedStage, factorise
from .records import finite, snr_db
from .stage import Stage, StageContext, constrained_rows, path_ends

SEGMENTS = 1  # of the polish's path (the clipped image starts ~40 dB from its goal: one suffices)
ROUNDING_ROUNDS = 8  # of the feature-aware rounding (a forward pass each, no Jacobian)


def as_saved(x, shape):
    """x as the PNG writer stores it: clipped to [0, 1], rounded to 8 bits (flat float64)."""
    return to_uint8(np.asarray(x, np.float64).reshape(*shape, 3)).reshape(-1).astype(np.float64) / 255.0


def round_to_features(stage, x, goal, rows, solver, rounds=ROUNDING_ROUNDS):
    """The 8-bit image whose features stay closest to `goal`. Rounding every value to the nearest
    level costs the deep means up to ~30 dB of the polish's precision, but each value has two
    levels next to it, and which one it takes is a choice. Each round measures the rounded image's
    feature error r (a forward pass) and, in the linear model of the last Jacobian's rows J (bound
    pixels held; rows scaled by one over their layer's target norm), moves values to their other
    level one at a time, most helpful first, while a move lowers |r - J d|^2 (moves judged
    together overshoot: they all push along r). The round is kept if the true sum of the layers'
    squared relative errors went down. Returns (saved flat float64, values moved)."""
    net, levels = stage.net, 255.0
    x = np.clip(np.asarray(x, np.float64), 0.0, 1.0)
    low, high = np.floor(x * levels) / levels, np.ceil(x * levels) / levels
    saved = as_saved(x, net.shape)
    feats = solver.rows[solver.kept]
    scale = np.empty(feats.size)
    for j in range(len(net.layers)):
        sel = (feats >= net.offsets[j]) & (feats < net.offsets[j + 1])
        scale[sel] = 1.0 / max(np.linalg.norm(goal[feats[sel]]), 1e-30)
    columns = np.ascontiguousarray((solver.kept_rows() * scale[:, None].astype(np.float32)).T,
                                   dtype=np.float32)  # [N, m]: a second copy of J, in float32
    column_sq = np.einsum("ij,ij->i", columns, columns, dtype=np.float64)
    f = net.means(saved)
    err, moved = np.sum(stage.layer_errors(f, goal, rows) ** 2), 0
    for _ in range(rounds):
        r = (goal - f)[feats] * scale
        trial, count = saved.copy(), 0
        step = np.where(trial == low, high, low) - trial
        gain = -2.0 * step * (columns @ r) + step ** 2 * column_sq
        for i in np.argsort(gain)[:int(np.sum(gain < 0))]:
            g = -2.0 * step[i] * (columns[i] @ r) + step[i] ** 2 * column_sq[i]
            if g < 0:
                r -= step[i] * columns[i]
                trial[i] += step[i]
                count += 1
        if not count:
            break
        f_trial = net.means(trial)
        e = np.sum(stage.layer_errors(f_trial, goal, rows) ** 2)
        if e >= err:
            break
        err, saved, f, moved = e, trial, f_trial, moved + count
    return saved, moved


def _snr_per_layer(net, f, goal, rows):
    """SNR dB per layer over the constrained rows."""
    out = {}
    for j, name in enumerate(net.layers):
        sel = rows[(rows >= net.offsets[j]) & (rows < net.offsets[j + 1])]
        out[name] = finite(snr_db(f[sel], goal[sel])) if sel.size else None
    return out


class PolishStage(ProjectedStage):
    """The projected corrector on the rows of every layer, all of them moving along the path, with
    the pixel bounds as an active set: pixels at a bound when a Jacobian is taken are held (their
    columns zeroed), and every trial point is clipped to [0, 1]."""

    box = True  # False: no bounds (for measuring what the bounds cost)

    def __init__(self, stage, goal, reference, config):
        super().__init__(stage, goal[stage.net.offsets[stage.k]:], reference, config)
        self.goal_all = goal

    def admissible(self, x):
        return np.clip(x, 0, 1) if self.box else x

    def goal(self, s):
        return (1 - s) * self.f_start + s * self.goal_all

    def factor(self, at):
        solver = factorise(self.net, at, self.k, self.rows, self.config.dead_tolerance, exact=True,
                           held=((at <= 0) | (at >= 1)) if self.box else None)
        self.stats.jacobians += 1
        return solver

    def run(self, x):
        net, k = self.net, self.k
        x = self.admissible(x)
        self.f_start = net.means(x)
        self.lo = net.offsets[k]
        self.rows = constrained_rows(net, k, self.f_start, self.target, self.reference.dead,
                                     self.config.dead_tolerance)
        self.final_goal, self.earlier_rows = self.goal_all, self.rows[:0]
        ends = path_ends(SEGMENTS, False, reversible=False)
        solver = self.factor(x)
        for i, s_end in enumerate(ends):
            x, solver, ok = self.chord(x, self.goal(s_end), solver, i, refresh=True)
            self.stats.unconverged += int(not ok)
            if i + 1 < len(ends) and self.stats.jacobians < self.config.polish_jacobians:
                solver = self.factor(x)
        self.solver = solver
        return x


def polish(net, image, reference, config, features=None, callback=None):
    """Set all layers' means to `features` on the saved form of `image`, pixels in [0, 1].

    Args:
        net: a FeatureMeans; image: the imposed image (any range); features: {layer: target
            means} (default: the unclipped image's own).
        reference: its dead channels stay unconstrained; config: tolerance, max_corrections,
            max_refreshes, polish_jacobians, dead_tolerance.
        callback: called with a DecoupledProgress after every corrector iteration.
    Returns:
        (image as saved, float32 [H, W, 3] in [0, 1] on the 8-bit grid; report dict).
    """
    t0 = time.perf_counter()
    if features is None:
        features = net.split(net.means(np.asarray(image, np.float64).reshape(-1)))
    goal = np.concatenate([np.asarray(features[n], np.float64) for n in net.layers])
    stage = Stage(net, len(net.layers) - 1, StageContext(kind="polish", num_stages=1, callback=callback,
                                                         implicit=False))
    scheme = PolishStage(stage, goal, reference, config)
    x = scheme.run(np.asarray(image, np.float64).reshape(-1))
    saved, moved = round_to_features(stage, x, goal, scheme.rows, scheme.solver)
    f_saved = net.split(net.means(saved))
    f_nearest = net.split(net.means(as_saved(x, net.shape)))
    stats = scheme.stats
    report = {"stage": "polish", "jacobians": stats.jacobians, "corrections": stats.corrections,
              "refreshes": stats.refreshes, "unconverged_segments": stats.unconverged,
              "start_snr_db": _snr_per_layer(net, scheme.f_start, goal, scheme.rows),
              "polished_snr_db": _snr_per_layer(net, net.means(x), goal, scheme.rows),
              "saved_snr_db": {n: finite(snr_db(f_saved[n], features[n])) for n in net.layers},
              "nearest_rounding_snr_db": {n: finite(snr_db(f_nearest[n], features[n])) for n in net.layers},
              "rounding_moved_values": moved,
              "bound_fraction": float(np.mean((x <= 0) | (x >= 1))),
              "passes": stage.passes(), "wall_time_s": time.perf_counter() - t0}
    return saved.reshape(*net.shape, 3).astype(np.float32), report
