"""pyengine: a hand-optimized CPU inference engine for fixed-weight transformer models.

The native kernels live in the private extension pyengine._C; this package is the public API.
"""

from pyengine import ops
from pyengine._C import get_num_threads, set_num_threads
from pyengine._cpu import cpu_info
from pyengine.api import load

__version__ = "0.1.0"
__all__ = ["cpu_info", "get_num_threads", "load", "ops", "set_num_threads"]
