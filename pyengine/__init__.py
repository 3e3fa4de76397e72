"""pyengine: a hand-optimized CPU inference engine for fixed-weight transformer models.

The native kernels live in the private extension pyengine._C; this package is the public API.
"""

try:
    from pyengine import _C  # noqa: F401 - the native extension, built by pip install
except ImportError as e:  # a source tree whose extension was never built
    raise ImportError(
        "pyengine's native extension pyengine._C is not built in "
        f"{__path__[0]}: install the package (pip install .) and run the tests as "
        "`pytest tests` (not `python -m pytest`, which imports this source tree), or build it "
        "here with `python setup.py build_ext --inplace`"
    ) from e
from pyengine import ops
from pyengine._C import get_num_threads, set_num_threads
from pyengine._cpu import cpu_info
from pyengine.api import load
from pyengine.generation import perplexity

__version__ = "0.1.0"
__all__ = ["cpu_info", "get_num_threads", "load", "ops", "perplexity", "set_num_threads"]
