"""The reversible scheme: projected stages made exactly invertible, so impose(normalize(x)) = x.

Its Jacobians are those of the network with the derivatives of ReLU and max pool softened
(smoothing.py), taken at the exact network's values. Normalising segments are implicit: J at
the segment's end, found by Anderson-accelerated fixed-point iteration (`ReversibleStage.implicit_segment`);
imposing segments are explicit, so each imposing segment solves the very equation its
normalising segment solved. The corrector's secant model starts from the exact network's rows
(`model`), a stalled corrector renews that model, never its basis (`renew`), and the path's
grid is finer at its ends (`path_ends`). Channels zero at either end of a stage are left out
in both directions (`constrained_rows`) instead of being lifted awake.
"""
import numpy as np

from .projected import ProjectedStage
from .stage import path_ends

ANDERSON_MEMORY = 4  # past differences the fixed-point acceleration fits


class ReversibleStage(ProjectedStage):
    """One stage of the reversible method (a reversible run's first `reversible_layers` layers)."""

    contraction = 0.95  # patient: a stall renews the model, which is cheap next to a fresh basis

    @property
    def smoothed(self):
        return bool(self.net.smoothing)

    def path(self, n):
        """The normalising grid cut finer at its ends, the imposing grid its mirror."""
        return path_ends(n, self.implicit, reversible=True)

    def model(self, at):
        """The exact network's Jacobian rows of all constrained features at `at` (how the exact
        features respond; the corrector's basis stays the softened rows)."""
        self.stats.jacobians += 1
        return self.net.stacked_jacobian(at, self.rows, exact=True)

    def renew(self, x, solver, secant):
        """Keep the basis (what makes the scheme reversible), renew the model from exact rows here."""
        secant.remodel(self.net.stacked_jacobian(x, solver.rows[solver.kept], exact=True))
        self.stats.jacobians += 1
        return solver, secant

    def wake_before(self, x):
        return x  # channels dead at a path end are left out, not lifted

    def wake_after(self, x, solver):
        return x, solver

    def segment(self, x, s_end, solver, index):
        """Imposing: explicit (the Jacobian at the start). Normalising: implicit."""
        if not self.implicit:
            return super().segment(x, s_end, solver, index)
        return self.implicit_segment(x, s_end, solver, index)

    def implicit_segment(self, x, s_end, solver, index):
        """x_b = x_a + J(x_b)^T mu with f(x_b) = path(s_end): the explicit step predicts x_b, then a
        Picard iteration on the Jacobian's point, Anderson-accelerated, re-solves the chord from
        x_a in the row space of J(point), warm-started at the last solution. An implicit step is
        undone by the explicit step in the other direction (same J, same affine space), up to the
        corrector and fixed-point tolerances. If the last chord did not converge, the segment
        goes on with the explicit scheme (reported as unconverged; it breaks the exact reversal)."""
        config = self.config
        g = self.goal(s_end)
        model = self.model(x)
        x_new, _, ok = self.chord(x, g, solver, index, refresh=True, model=model)  # the predictor
        change, point, past = 0.0, x_new, []
        for _ in range(config.fixed_point_iterations):
            end = self.factor(point)
            self.stats.fixed_point_iterations += 1
            warm = x_new - end.project_out(x_new - x)
            x_next, _, ok = self.chord(x, g, end, index, refresh=False, x_init=warm, model=model)
            residual = x_next - point
            change = float(np.linalg.norm(x_next - x_new) / np.linalg.norm(x))
            x_new, solver = x_next, end
            if change < config.fixed_point_tolerance and ok:
                break
            past = (past + [(point, residual)])[-(ANDERSON_MEMORY + 1):]
            point = _anderson(past, point, residual) if len(past) > 1 else x_next
        self.stats.fixed_point_changes.append(change)  # the segment's reversal is as good as its last change
        if not ok:  # fall back to the explicit scheme for the rest of this segment
            x_new, solver, ok = self.chord(x_new, g, solver, index, refresh=True, model=model)
        return self.end_segment(x, x_new, solver, ok)


def _anderson(past, point, residual):
    """The next point of an Anderson-accelerated fixed-point iteration from the (point, residual)
    pairs `past` (oldest first; the last is the current one)."""
    d_x = np.stack([b[0] - a[0] for a, b in zip(past, past[1:])], axis=1)
    d_r = np.stack([b[1] - a[1] for a, b in zip(past, past[1:])], axis=1)
    gamma = np.linalg.lstsq(d_r, residual, rcond=None)[0]
    return point + residual - (d_x + d_r) @ gamma
