"""Linear / Bf16Linear with batch_invariant=True: each row's result is bit-identical whatever
the number of rows it is computed with (the serving engine's deterministic mode), on every ISA
level and at 1 and 2 threads. Without it, few-row calls take the GEMV kernels, whose summation
order differs from the many-row kernels'."""

from __future__ import annotations

import numpy as np
import pytest

from pyengine.ops import Bf16Linear, Linear


@pytest.mark.parametrize("cls", [Linear, Bf16Linear], ids=["f32", "bf16"])
@pytest.mark.parametrize("shape", [(33, 17), (129, 65), (576, 192)])
def test_rows_alone_equal_rows_in_a_batch(isa, threads, cls, shape):
    n, k = shape
    rng = np.random.default_rng(n + k)
    lin = cls(
        rng.standard_normal((n, k), dtype=np.float32),
        rng.standard_normal(n, dtype=np.float32),
        isa=isa,
    )
    x = rng.standard_normal((40, k), dtype=np.float32)
    res = rng.standard_normal((40, n), dtype=np.float32)
    whole = lin(x, residual=res, batch_invariant=True)
    for rows in (slice(0, 1), slice(3, 5), slice(7, 10), slice(11, 28)):
        part = lin(x[rows].copy(), residual=res[rows].copy(), batch_invariant=True)
        np.testing.assert_array_equal(part, whole[rows])
    # and it is still the product (the same bound as the default path)
    np.testing.assert_allclose(whole, lin(x, residual=res), rtol=0, atol=1e-3 * np.abs(whole).max())
