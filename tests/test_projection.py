"""The linear algebra of projected steps, on known bases."""
import numpy as np
import pytest

from nst_keras.decoupled.projection import MinNormSolver, max_abs_cos, min_norm_solve


def _rows(m, n, seed=0):
    return np.random.default_rng(seed).standard_normal((m, n))


def test_solve_is_min_norm_and_exact():
    a, b = _rows(5, 40), np.arange(5.0)
    x, solver = min_norm_solve(a, b)
    np.testing.assert_allclose(a @ x, b, atol=1e-10)
    np.testing.assert_allclose(x, np.linalg.pinv(a) @ b, atol=1e-10)
    assert solver.rank == 5 and solver.dead.size == 0 and solver.dependent.size == 0


def test_project_out_is_orthogonal_to_known_basis():
    a = _rows(6, 30, seed=1) * np.array([1e-3, 1, 1e3, 1, 1, 5])[:, None]  # very different row scales
    v = np.random.default_rng(2).standard_normal(30)
    p = MinNormSolver(a).project_out(v)
    assert max_abs_cos(p, a) < 1e-12
    # What was removed lies in the row space: v - p = a.T @ y for some y.
    y, *_ = np.linalg.lstsq(a.T, v - p, rcond=None)
    np.testing.assert_allclose(a.T @ y, v - p, atol=1e-10)


def test_rank_deficient_rows_are_dropped_and_reported():
    base = _rows(3, 25, seed=3)
    a = np.vstack([base, base[0] + 2 * base[1], np.zeros(25), 3 * base[2]])  # rows 3, 5 dependent; 4 dead
    solver = MinNormSolver(a)
    assert solver.rank == 3
    assert list(solver.dead) == [4]
    assert len(solver.dependent) == 2
    v = np.random.default_rng(4).standard_normal(25)
    assert max_abs_cos(solver.project_out(v), a) < 1e-12  # orthogonal to dropped rows too
    b = a @ np.random.default_rng(5).standard_normal(25)  # a consistent right-hand side
    np.testing.assert_allclose(a @ solver.solve(b), b, atol=1e-9)


def test_nearly_dependent_row_counts_as_dependent():
    base = _rows(2, 20, seed=6)
    near = base[0] + 1e-7 * _rows(1, 20, seed=7)[0]
    solver = MinNormSolver(np.vstack([base, near]))
    assert solver.rank == 2 and solver.dependent.size == 1


def test_max_abs_cos_known_values():
    rows = np.array([[1.0, 0, 0], [0, 2.0, 0]])
    assert max_abs_cos([0, 0, 1.0], rows) == 0.0
    assert max_abs_cos([1.0, 1.0, 0], rows) == pytest.approx(2 ** -0.5)
    assert max_abs_cos([0, 0, 0], rows) == 0.0
    assert MinNormSolver(rows).max_abs_cos([0, -3.0, 0]) == pytest.approx(1.0)


def test_all_dead_rows():
    solver = MinNormSolver(np.zeros((3, 8)))
    assert solver.rank == 0 and solver.dead.size == 3
    np.testing.assert_array_equal(solver.solve(np.ones(3)), np.zeros(8))
