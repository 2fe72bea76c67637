"""The one R2 guard (``saca_lab.training.reporting.r2_or_nan``) used by training, comparison
studies and the reproduction report."""

import math

import numpy as np
import pytest
from sklearn.metrics import r2_score

from saca_lab.training.reporting import r2_or_nan


def test_r2_equals_sklearn_where_defined():
    rng = np.random.default_rng(0)
    for _ in range(50):
        y = rng.normal(size=rng.integers(2, 30)) * rng.uniform(0.01, 10)
        pred = y + rng.normal(size=y.size)
        assert r2_or_nan(y, pred) == r2_score(y, pred)


@pytest.mark.parametrize("y", [[1.0], [2.0, 2.0, 2.0], []])
def test_r2_is_nan_for_one_row_or_a_constant_truth(y):
    # sklearn would give 0, 1 or a warning here, which a table would read as a score
    assert math.isnan(r2_or_nan(y, np.asarray(y) + 1.0))


def test_r2_per_column():
    y = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0]])
    pred = y + np.array([[0.1, 0.0], [-0.1, 1.0], [0.2, 0.0]])
    r2 = r2_or_nan(y, pred)
    assert r2.shape == (2,) and r2[0] == r2_score(y[:, 0], pred[:, 0]) and math.isnan(r2[1])
