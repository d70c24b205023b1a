"""``python -m xpu_inductor_ext ...`` is the ``xpu-quant`` command."""

import sys

from .inspect.cli import main

sys.exit(main())
