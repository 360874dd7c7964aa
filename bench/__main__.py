"""`python -m bench`: run every benchmark, print the tables, write reports/bench.md."""

import sys

from .run import main

sys.exit(main())
