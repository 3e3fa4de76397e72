"""Kernel-level building blocks users may call directly.

``Linear(weight, bias=None, *, isa=None)`` packs ``weight`` ([out_features, in_features] float32,
torch.nn.Linear's layout) once, at construction; ``lin(x, out=None, residual=None)`` computes
``x @ weight.T + bias (+ residual)`` for ``x`` of shape ``[..., in_features]``.

``matmul(a, b, *, isa=None)`` is a general float32 ``a @ b`` for 2-D and batched 3-D operands.

Both validate their arguments and raise TypeError (dtype) or ValueError (shape, layout) naming
the argument; both release the GIL while they compute.
"""

from pyengine._C import Linear, matmul

__all__ = ["Linear", "matmul"]
