"""Linear algebra of projected steps: min-norm solves with rank detection, projections, cosines,
and the secant model of a corrector's inverse.

Everything here works on a stacked constraint matrix A [m, N] (one row per constrained feature,
N image values) in float64 numpy, independently of TensorFlow, so that it can be tested on
known bases. Rows are scaled to unit norm first: scaling a row and its right-hand side together
leaves the solution set of A x = b unchanged, and makes "dependent" a relative notion (the
sine of the angle between a row and the span of the others).
"""
import numpy as np
import scipy.linalg

DEAD_TOL = 1e-6  # a row whose norm is below this fraction of the largest row norm is dead
DEPENDENT_TOL = 1e-4  # a row closer than this (sine of the angle) to the span of the kept rows is dropped


class MinNormSolver:
    """Min-norm solutions of A x = b for a possibly rank-deficient A, via pivoted Cholesky.

    The Gram matrix of the unit-scaled rows is factorised with complete pivoting (LAPACK
    dpstrf); the pivoting stops when every remaining row lies within `dependent_tol` (sine of
    the angle) of the span of the rows kept so far. Dead rows (vanishing norm) and dependent
    rows are left out of the constraints; `kept`, `dead` and `dependent` name them by their
    index in A.

    Args:
        rows: A, array-like [m, N].
        dead_tol: relative row norm below which a row counts as dead.
        dependent_tol: sine threshold below which a row counts as dependent on the kept rows.
    """

    def __init__(self, rows, dead_tol=DEAD_TOL, dependent_tol=DEPENDENT_TOL):
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2:
            raise ValueError(f"rows must be a matrix [m, N]; received shape {rows.shape}")
        self.num_rows, self.num_columns = rows.shape
        norms = np.linalg.norm(rows, axis=1)
        largest = norms.max() if norms.size else 0.0
        alive = np.flatnonzero(norms > dead_tol * largest) if largest > 0 else np.array([], dtype=int)
        self.dead = np.setdiff1d(np.arange(self.num_rows), alive)
        unit = rows[alive] / norms[alive, None]
        if alive.size:
            gram = unit @ unit.T
            # Schur-complement diagonals are squared sines: stop below dependent_tol ** 2.
            factor, piv, rank, info = scipy.linalg.lapack.dpstrf(gram, lower=1, tol=dependent_tol ** 2)
            if info < 0:
                raise np.linalg.LinAlgError(f"dpstrf failed with info={info}")
            piv = piv[:alive.size] - 1  # LAPACK pivots are 1-based
            chosen = np.sort(piv[:rank])
        else:
            chosen = np.array([], dtype=int)
        self.kept = alive[chosen]
        self.dependent = np.setdiff1d(alive, self.kept)
        self._unit = unit[chosen]
        self._scale = norms[self.kept]
        if self.kept.size:
            # Re-factorise the kept rows in their natural order (plain Cholesky, well conditioned).
            self._chol = scipy.linalg.cho_factor(self._unit @ self._unit.T, lower=True)
        self._all_unit = unit  # every live row, for cosines
        self._alive = alive

    @property
    def rank(self):
        return int(self.kept.size)

    def solve(self, b):
        """The min-norm x with A_kept x = b_kept (entries of b for dropped rows are ignored)."""
        b = np.asarray(b, dtype=np.float64)
        if not self.kept.size:
            return np.zeros(self.num_columns)
        y = scipy.linalg.cho_solve(self._chol, b[self.kept] / self._scale)
        return self._unit.T @ y

    def coefficients(self, b):
        """y with solve(b) = expand(y): the min-norm solution's coefficients on the kept unit rows."""
        b = np.asarray(b, dtype=np.float64)
        if not self.kept.size:
            return np.zeros(0)
        return scipy.linalg.cho_solve(self._chol, b[self.kept] / self._scale)

    @property
    def row_norms(self):
        """Norms of the kept rows of A (the unit rows are the kept rows divided by them)."""
        return self._scale

    def scaled_residual(self, b):
        """b on the kept rows, in the units of the unit-scaled rows (what solve() works with)."""
        return np.asarray(b, dtype=np.float64)[self.kept] / self._scale

    def inverse_gram(self):
        """(U U^T)^-1 of the kept unit rows U, dense [rank, rank]."""
        return scipy.linalg.cho_solve(self._chol, np.eye(self.rank)) if self.rank else np.zeros((0, 0))

    def expand(self, y):
        """U^T y: the image-space vector with coefficients y on the kept unit rows."""
        return self._unit.T @ np.asarray(y, dtype=np.float64)

    def in_row_basis(self, rows):
        """rows @ U^T: other rows (e.g. a Jacobian taken elsewhere) against the kept unit rows."""
        return np.asarray(rows, dtype=np.float64) @ self._unit.T

    def project_out(self, v):
        """v minus its component in the span of the kept rows (orthogonal to every kept row)."""
        v = np.asarray(v, dtype=np.float64)
        if not self.kept.size:
            return v.copy()
        y = scipy.linalg.cho_solve(self._chol, self._unit @ v)
        return v - self._unit.T @ y

    def kept_rows(self):
        """The kept rows of A, in their original units [rank, N]."""
        return self._unit * self._scale[:, None]

    def max_abs_cos(self, v, indices=None):
        """Largest |cosine| between v and the live rows (optionally only rows with these indices)."""
        if indices is None:
            unit = self._all_unit
        else:
            unit = self._all_unit[np.isin(self._alive, indices)]
        return max_abs_cos(v, unit, assume_unit=True)


class ConstraintSolver(MinNormSolver):
    """A MinNormSolver on a stage's Jacobian rows that knows which feature each row constrains.

    Args:
        rows: the Jacobian rows [m, N], none of them dead (so dead_tol is 0).
        feature_rows: the stacked feature index of each row.
        gradient_dead: feature indices whose rows were left out for vanishing gradients.
        first_set_row: the first feature index of the layer being set; rows before it are the
            earlier layers' (`earlier`: their indices in A).
    """

    def __init__(self, rows, feature_rows, gradient_dead=(), first_set_row=0):
        super().__init__(rows, dead_tol=0.0)
        self.rows = np.asarray(feature_rows, int)
        self.gradient_dead = np.asarray(gradient_dead, int)
        self.dependent_rows = self.rows[self.dependent]
        self.earlier = np.flatnonzero(self.rows < first_set_row)


class Broyden:
    """Secant (good Broyden) updates of a corrector's inverse in the coefficients y of the row
    space, x = x_start + U^T y (U: the solver's kept unit rows). It starts as the chord's
    (U U^T)^-1 and learns how the features actually respond, so iterates never leave the row
    space of the Jacobian they started with (what makes the reversible scheme reversible).

    Args:
        solver: a ConstraintSolver (its `rows` say which features the residuals are of).
    """

    def __init__(self, solver):
        self.solver = solver
        self.inverse = solver.inverse_gram()

    def residual(self, f, g):
        return self.solver.scaled_residual((g - f)[self.solver.rows])

    def direction(self, residual):
        return self.inverse @ residual

    def remodel(self, rows_here):
        """Restart from the response measured by the Jacobian rows at the current point (the
        kept feature rows, in the solver's order): the basis U stays, only the model changes."""
        inverse_scale = self.solver.scaled_residual(np.ones(self.solver.num_rows))
        self.inverse = np.linalg.pinv(self.solver.in_row_basis(rows_here) * inverse_scale[:, None], rcond=1e-10)

    def update(self, dy, d_residual):
        h_dr = self.inverse @ (-d_residual)
        denom = float(dy @ h_dr)
        if abs(denom) > 1e-12 * np.linalg.norm(dy) * np.linalg.norm(h_dr):
            self.inverse += np.outer(dy - h_dr, dy @ self.inverse) / denom


def max_abs_cos(v, rows, assume_unit=False):
    """Largest |cosine| between vector v and the rows of a matrix; 0 for an empty set or v = 0."""
    v = np.asarray(v, dtype=np.float64).ravel()
    rows = np.asarray(rows, dtype=np.float64)
    vnorm = np.linalg.norm(v)
    if rows.size == 0 or vnorm == 0:
        return 0.0
    dots = np.abs(rows @ v) / vnorm
    if not assume_unit:
        norms = np.linalg.norm(rows, axis=1)
        live = norms > 0
        dots = dots[live] / norms[live]
    return float(dots.max()) if dots.size else 0.0


def min_norm_solve(rows, b, **options):
    """One-shot min-norm solve of rows @ x = b; returns (x, solver)."""
    solver = MinNormSolver(rows, **options)
    return solver.solve(b), solver
