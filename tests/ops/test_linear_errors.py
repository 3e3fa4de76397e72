"""Bad arguments raise TypeError/ValueError naming the argument, never crash."""

from __future__ import annotations

import numpy as np
import pytest

from pyengine.ops import Linear, matmul

W = np.ones((4, 3), np.float32)


@pytest.mark.parametrize(
    ("weight", "bias", "error", "match"),
    [
        (W.astype(np.float64), None, TypeError, "weight must have dtype float32, got float64"),
        ([[1.0, 2.0]], None, TypeError, "weight must be a numpy.ndarray"),
        (np.ones(3, np.float32), None, ValueError, r"weight must be 2-D, got shape \(3,\)"),
        (W, np.ones(5, np.float32), ValueError, r"bias must have shape \(4,\), got \(5,\)"),
        (W, np.ones(4, np.int32), TypeError, "bias must have dtype float32, got int32"),
    ],
)
def test_construction_errors(weight, bias, error, match):
    with pytest.raises(error, match=match):
        Linear(weight, bias)


def test_unknown_or_wrong_isa():
    with pytest.raises(ValueError, match="unknown ISA level 'avx9'"):
        Linear(W, isa="avx9")
    with pytest.raises(TypeError, match="isa must be a str"):
        Linear(W, isa=3)


def test_call_errors():
    lin = Linear(W)
    x = np.ones((2, 3), np.float32)
    with pytest.raises(TypeError, match="x must have dtype float32, got float64"):
        lin(x.astype(np.float64))
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 3\) to match in_features"):
        lin(np.ones((2, 5), np.float32))
    with pytest.raises(ValueError, match="x must be 1-D to 32-D"):
        lin(np.array(1.0, np.float32))
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        lin(np.ones((3, 2), np.float32).T)
    with pytest.raises(ValueError, match=r"out must have shape \(2, 4\), got \(2, 3\)"):
        lin(x, out=np.empty((2, 3), np.float32))
    with pytest.raises(TypeError, match="out must have dtype float32"):
        lin(x, out=np.empty((2, 4), np.float64))
    with pytest.raises(ValueError, match="out must be C-contiguous"):
        lin(x, out=np.empty((4, 2), np.float32).T)
    readonly = np.empty((2, 4), np.float32)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writeable"):
        lin(x, out=readonly)
    with pytest.raises(ValueError, match=r"residual must have shape \(2, 4\)"):
        lin(x, residual=np.ones((4,), np.float32))
    shared = np.ones((2, 4), np.float32)
    with pytest.raises(ValueError, match="out must not share memory with x"):
        Linear(np.ones((4, 4), np.float32))(shared, out=shared)
    backing = np.zeros(9, np.float32)
    with pytest.raises(ValueError, match="out must not share memory with residual"):
        lin(x, out=backing[:8].reshape(2, 4), residual=backing[1:].reshape(2, 4))


def test_matmul_errors():
    a = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"a's last dimension \(3\) must equal b's second to last"):
        matmul(a, np.ones((4, 2), np.float32))
    with pytest.raises(TypeError, match="b must have dtype float32, got float16"):
        matmul(a, np.ones((3, 2), np.float16))
    with pytest.raises(ValueError, match="a must be 2-D to 3-D"):
        matmul(np.ones(3, np.float32), np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match="batch sizes differ"):
        matmul(np.ones((2, 2, 3), np.float32), np.ones((3, 3, 2), np.float32))
    with pytest.raises(ValueError, match="so a must be 3-D too"):
        matmul(a, np.ones((2, 3, 2), np.float32))
    with pytest.raises(ValueError, match="b must be C-contiguous"):
        matmul(a, np.ones((2, 3), np.float32).T)
