"""python -m pyengine.bench: the benchmark runner (same as the pyengine-bench command)."""

import sys

from pyengine.bench.runner import main

sys.exit(main())
