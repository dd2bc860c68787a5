"""The projected scheme: min-norm continuation along a stage's straight feature path.

Each segment s_a -> s_b solves x_b = x_a + J^T mu, f(x_b) = path(s_b), so every iterate stays in
x_a + the row space of J, the stacked Jacobian [J_<k; J_k] taken at the segment's start. The
corrector (`chord`) starts with the min-norm step and learns a secant model of the inverse; a
stalled segment takes a fresh Jacobian (damped Gauss-Newton). Departure from the paper: layer-k
channels that are zero everywhere are lifted awake (`lift`, `wake`). If the set layer does not
converge, `restore` brings drifted earlier layers back. ReversibleStage (reversible.py) overrides
the hooks: contraction, smoothed, path, model, renew, wake_before, wake_after and segment.
"""
from dataclasses import dataclass, field

import numpy as np

from ..vgg import layer_stride
from .config import WAKE_REFRESH_ERROR
from .projection import Broyden, ConstraintSolver, MinNormSolver, max_abs_cos
from .stage import path_ends


@dataclass
class StageStats:
    """What a projected or reversible stage counts and measures on the way."""

    jacobians: int = 0
    refreshes: int = 0
    unconverged: int = 0
    corrections: int = 0
    fixed_point_iterations: int = 0
    fixed_point_changes: list = field(default_factory=list)  # last relative change per implicit segment
    gradient_dead: set = field(default_factory=set)
    dependent: set = field(default_factory=set)
    woken: set = field(default_factory=set)
    max_cos: float = 0.0  # |cos| of predictor steps against the earlier rows they are built from
    max_cos_move: float = 0.0  # of whole segment moves
    max_cos_exact: float = None  # of one predictor step against the exact earlier rows (smoothed rows)
    plain_model_fallbacks: int = 0
    restore_steps: int = 0

    def report(self, k, implicit, smoothed, segments):
        """The stage report's scheme part (these keys are read by tests and BENCHMARKS.md)."""
        return {"restore_steps": self.restore_steps, "scheme": "implicit" if implicit else "explicit",
                "segments": segments,
                "max_abs_cos": (self.max_cos_exact if smoothed else self.max_cos) if k else None,
                "max_abs_cos_smoothed_rows": self.max_cos if k and smoothed else None,
                "max_abs_cos_segment_move": self.max_cos_move if k else None,
                "jacobians": self.jacobians, "jacobian_refreshes": self.refreshes,
                "plain_model_fallbacks": self.plain_model_fallbacks,
                "unconverged_segments": self.unconverged,
                "corrections": self.corrections, "fixed_point_iterations": self.fixed_point_iterations,
                "fixed_point_change": max(self.fixed_point_changes, default=0.0) if implicit else None,
                "fixed_point_changes": [float(f"{c:.3g}") for c in self.fixed_point_changes] if implicit
                else None,
                "gradient_dead": sorted(self.gradient_dead - self.woken),
                "woken": sorted(self.woken), "dependent": sorted(self.dependent)}


def factorise(net, x, k, rows, dead_tolerance, exact=True, held=None):
    """ConstraintSolver on the stacked Jacobian of the constrained rows at x, with rows dead per
    layer removed (of the smoothed network if the net has smoothing and exact=False). `held`: a
    mask of image values the steps must not move (their columns are zeroed)."""
    blocks, kept_rows, dead_rows = [], [], []
    for j in range(k + 1):
        lo, hi = net.offsets[j], net.offsets[j + 1]
        sel = rows[(rows >= lo) & (rows < hi)]
        jac = net.jacobian(x, j, sel - lo, exact=exact)
        if held is not None:
            jac[:, held] = 0
        norms = np.linalg.norm(jac, axis=1)
        ok = norms > 1e-6 * max(norms.max(initial=0.0), 1e-30)
        blocks.append(jac[ok])
        kept_rows.append(sel[ok])
        dead_rows.append(sel[~ok])
    return ConstraintSolver(np.concatenate(blocks), np.concatenate(kept_rows), np.concatenate(dead_rows),
                            net.offsets[k])


class ProjectedStage:
    """One stage of the projected method: `run(x)` returns (x, f, constrained rows, report part).

    Args:
        stage: the Stage (net, layer index k, bookkeeping, callback).
        target: layer k's target means, float64.
        reference: the Reference; config: the DecoupledConfig for this layer (`config.at_layer(k)`).
    """

    contraction = 0.7  # an iteration that reduces the error by less than this factor has stalled

    def __init__(self, stage, target, reference, config):
        self.stage, self.net, self.k, self.config = stage, stage.net, stage.k, config
        self.target, self.reference, self.implicit = target, reference, stage.context.implicit
        self.stats = StageStats()
        self.num_segments = 0
        self.f_start = self.lo = self.rows = self.final_goal = self.earlier_rows = None  # set by run()

    @property
    def smoothed(self):
        """Whether the segments' rows are the softened network's (else the exact network's)."""
        return False

    @property
    def newton(self):
        """A layer at full resolution (block1: rows through at most two convolutions, about 1/170
        of a block5 row's cost) renews its Jacobian at every stall, without a refresh limit (the
        segment's max_corrections bound it). Its stages converge only linearly (channels driven
        towards zero lose positions across the ReLU kink at every step), and the chord's four
        stalls per Jacobian with max_refreshes left such stages at 38-48 dB
        (docs/decoupled/NUMERICS.md, "Block1")."""
        return not self.smoothed and layer_stride(self.net.layers[self.k]) == 1

    def path(self, n):
        """Where the path's n segments end: equal segments."""
        return path_ends(n, self.implicit, reversible=False)

    def model(self, at):
        """Exact rows for the corrector's secant model to start from (None: the chord's own)."""
        return None

    def renew(self, x, solver, secant):
        """A stalled chord: a fresh Jacobian at the current point; returns (solver, secant)."""
        solver = self.factor(x)
        return solver, Broyden(solver)

    def admissible(self, x):
        """A trial point as the scheme accepts it (here any; the polish clips to [0, 1])."""
        return x

    def wake_before(self, x):
        """Before the first Jacobian (so that it has their rows): lift channels zero everywhere."""
        x, woken = self.lift(x, self.f_start)
        self.stats.woken.update(woken.tolist())
        return x

    def wake_after(self, x, solver):
        """After the last segment: wake the channels still zero (`wake`)."""
        return self.wake(x, solver)

    def run(self, x):
        """Follow the path in its segments; returns (x, f, constrained rows, report part)."""
        stage, config = self.stage, self.config
        self.f_start, self.lo, self.rows, self.final_goal = stage.start(x, self.target, self.reference, config)
        self.earlier_rows = self.rows[self.rows < self.lo]
        n = int(config.path_segments[self.k])
        if stage.layer_errors(self.f_start, self.final_goal, self.rows).max() < 3 * config.corrector_tolerance:
            n = 0  # already there (e.g. an image normalised before): iterating on round-off only drifts
        ends = self.path(n)
        n = self.num_segments = len(ends)
        if n:
            x = self.wake_before(x)
        solver = self.factor(x) if n else None
        for i, s_end in enumerate(ends):
            x, solver = self.segment(x, s_end, solver, i)
            if i + 1 < n:
                solver = self.factor(x)  # explicit: the next segment's Jacobian at its start
        if solver is not None:
            x, solver = self.wake_after(x, solver)
        f = self.net.means(x, self.k)
        if solver is not None and self.earlier_rows.size:
            x, f = self.restore(x, f, solver)
        stage.report_progress(n, f, self.final_goal, self.rows)
        return x, f, self.rows, self.stats.report(self.k, self.implicit, self.smoothed, n)

    def goal(self, s):
        """The path's point s: earlier layers at their start values, layer k moved by s."""
        g = self.f_start.copy()
        g[self.lo:] = (1 - s) * self.f_start[self.lo:] + s * self.target
        return g

    def factor(self, at):
        """The stacked Jacobian's solver at `at`; measures how orthogonal its predictor step is
        to the earlier layers' rows."""
        net, stats, lo = self.net, self.stats, self.lo
        solver = factorise(net, at, self.k, self.rows, self.config.dead_tolerance, exact=not self.smoothed)
        stats.jacobians += 1
        stats.gradient_dead.update(solver.gradient_dead.tolist())
        stats.dependent.update(solver.dependent_rows.tolist())
        if self.earlier_rows.size:  # the projected direction must be orthogonal to the earlier rows
            direction = np.zeros(solver.rows.size)
            set_part = solver.rows >= lo
            direction[set_part] = (self.target - self.f_start[lo:])[solver.rows[set_part] - lo]
            step = solver.solve(direction)
            stats.max_cos = max(stats.max_cos, solver.max_abs_cos(step, solver.earlier))
            if self.smoothed and stats.max_cos_exact is None:
                # Smoothed rows define the steps; measure them against the true gradients once per stage.
                stats.max_cos_exact = max_abs_cos(step, net.stacked_jacobian(at, self.earlier_rows, exact=True))
        return solver

    def chord(self, x_start, g, solver, segment, refresh, x_init=None, max_refreshes=None, model=None):
        """x = x_start + J^+ (...) iterated until f(x) = g; returns (x, solver, converged).

        Convergence is judged on the rows the factorisation uses: a channel without gradient
        (dead at this point) cannot be moved and would otherwise hide the progress of the rest.
        With refresh=True a stalled iteration renews (`renew`) and goes on; with refresh=False it
        gives up (used by the implicit scheme). `model`: exact Jacobian rows of all constrained
        features, from which the secant model starts (see `model`).
        """
        net, stage, config, stats = self.net, self.stage, self.config, self.stats
        tolerance = config.corrector_tolerance
        x = x_start.copy() if x_init is None else x_init
        f = net.means(x, self.k)
        err = stage.layer_errors(f, g, solver.rows).max()
        stage.report_progress(segment, f, self.final_goal, self.rows)
        stalls = refreshes = 0
        secant, plain = Broyden(solver), model is None
        if model is not None:
            secant.remodel(model[np.searchsorted(self.rows, solver.rows[solver.kept])])
        for _ in range(config.max_corrections):
            if err < tolerance:
                return x, solver, True
            residual = secant.residual(f, g)
            dy = secant.direction(residual)
            dx = solver.expand(dy)
            stats.corrections += 1
            step = 1.0
            for _ in range(5):  # damping: halve the step until the error drops
                x_try = self.admissible(x + step * dx)
                f_try = net.means(x_try, self.k)
                err_try = stage.layer_errors(f_try, g, solver.rows).max()
                if err_try < err:
                    break
                step *= 0.5
            improved = err_try < err
            stalls = 0 if err_try < self.contraction * err else stalls + 1
            if improved:
                secant.update(step * dy, secant.residual(f_try, g) - residual)
                x, f, err = x_try, f_try, err_try
                stage.report_progress(segment, f, self.final_goal, self.rows)
            if not improved and not plain:
                # A channel nearly dead in the exact network but not in the softened rows makes the
                # exact model nearly singular and its steps far too long; go on from the min-norm model.
                secant, plain, stalls = Broyden(solver), True, 0
                stats.plain_model_fallbacks += 1
                continue
            if not improved or stalls >= (1 if self.newton else 4):
                if err < 3 * tolerance:  # near the tolerance, where round-off stalls the steps: accept
                    return x, solver, True
                limit = max_refreshes if max_refreshes is not None else (
                    config.max_corrections if self.newton else config.max_refreshes)
                if not refresh or refreshes >= limit:
                    return x, solver, False
                solver, secant = self.renew(x, solver, secant)
                err = stage.layer_errors(f, g, solver.rows).max()  # its active rows may differ
                stats.refreshes += 1
                refreshes += 1
                stalls = 0
        return x, solver, err < 3 * tolerance

    def segment(self, x, s_end, solver, index):
        """Advance to s_end with the Jacobian at the segment's start; returns (x_b, solver to use next)."""
        model = self.model(x)
        x_new, solver, ok = self.chord(x, self.goal(s_end), solver, index, refresh=True, model=model)
        return self.end_segment(x, x_new, solver, ok)

    def end_segment(self, x, x_new, solver, ok):
        """Count a finished segment and measure its move against the earlier rows."""
        if self.earlier_rows.size:
            self.stats.max_cos_move = max(self.stats.max_cos_move, solver.max_abs_cos(x_new - x, solver.earlier))
        self.stats.unconverged += int(not ok)
        return x_new, solver

    def lift(self, x, f, kept=None):
        """Departure (the paper has no such channels): layer-k channels that are zero everywhere
        have no gradient, so no corrector can move them. A min-norm step raises each one's
        largest pre-activation to (positions x target), what one position alone would need, for
        the channels where that is no more than the layer's largest pre-activation (channels with
        a larger target usually wake up on the way, and a single-position spike that large would
        derail the corrector); with kept = (Jacobian rows, their feature indices), those rows stay
        put to first order. Returns (x, woken feature rows)."""
        rows, lo, goal = self.rows, self.lo, self.final_goal
        stuck = rows[(rows >= lo) & (f[rows] <= 0) & (goal[rows] > 0)]
        if not stuck.size:
            return x, stuck
        peak, top_rows, positions, ceiling = self.net.top_preactivation(x, self.k, stuck - lo)
        live = (np.linalg.norm(top_rows, axis=1) > 0) & (positions * goal[stuck] <= ceiling)
        stuck, demand = stuck[live], positions * goal[stuck[live]] - peak[live]
        if not stuck.size:
            return x, stuck
        if kept is None:
            dx = MinNormSolver(top_rows[live]).solve(demand)
        else:
            dx = MinNormSolver(np.concatenate([kept[0], top_rows[live]]), dead_tol=0.0).solve(
                np.concatenate([(goal - f)[kept[1]], demand]))
        woken = stuck[self.net.means(x + dx, self.k)[stuck] > 0]
        return (x + dx, woken) if woken.size else (x, woken)

    def wake(self, x, solver):
        """Channels still zero at the end: lift them (see `lift`), add their rows and correct.
        A fresh Jacobian (at block5 it costs more than the rest of the lift) is spent only while
        the stage is above WAKE_REFRESH_ERROR; a try that leaves the stage worse off is undone."""
        net, stage, goal = self.net, self.stage, self.final_goal
        for _ in range(2):
            f = net.means(x, self.k)
            before = stage.layer_errors(f, goal, self.rows).max()
            base, base_rows = solver.kept_rows(), solver.rows[solver.kept]
            x_new, woken = self.lift(x, f, (base, base_rows))
            if not woken.size:
                break
            woken_rows = net.stacked_jacobian(x_new, woken, exact=not self.smoothed)
            added = ConstraintSolver(np.concatenate([base, woken_rows]), np.concatenate([base_rows, woken]),
                                     np.setdiff1d(solver.gradient_dead, woken), self.lo)
            x_new, solver_new, _ = self.chord(x_new, goal, added, self.num_segments,
                                              refresh=before > WAKE_REFRESH_ERROR, max_refreshes=1)
            if stage.layer_errors(net.means(x_new, self.k), goal, self.rows).max() >= before:
                break
            x, solver = x_new, solver_new
            self.stats.woken.update(woken.tolist())
        return x, solver

    def restore(self, x, f, solver):
        """Bring drifted earlier layers back to their values with min-norm steps in their rows only.

        Used when the set layer could not converge (its error then stays as it is); the rows come
        from the last factorisation, so this costs forward passes only.
        """
        stage, config, goal, rows = self.stage, self.config, self.final_goal, self.rows
        errs = stage.layer_errors(f, goal, rows)
        if errs[:-1].max() < 3 * config.corrector_tolerance:
            return x, f
        feature_rows = solver.rows[solver.kept]
        mask = feature_rows < self.lo
        sub = MinNormSolver(solver.kept_rows()[mask], dead_tol=0.0)
        err = errs[:-1].max()
        for _ in range(config.max_corrections):
            if err < config.corrector_tolerance:
                break
            dx = sub.solve((goal - f)[feature_rows[mask]])
            step, improved = 1.0, False
            for _ in range(5):
                x_try = x + step * dx
                f_try = self.net.means(x_try, self.k)
                err_try = stage.layer_errors(f_try, goal, rows)[:-1].max()
                if err_try < err:
                    improved = True
                    break
                step *= 0.5
            if not improved:
                break
            x, f, err = x_try, f_try, err_try
            self.stats.restore_steps += 1
        return x, f
