"""`python -m anil_engine` runs the command line."""

import sys

from anil_engine.cli import main

sys.exit(main())
