"""`python -m bench` from a checkout (bench/ is not installed with the product)."""

import sys

from bench.cli import main

sys.exit(main())
