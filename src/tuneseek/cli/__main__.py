"""``python -m tuneseek.cli``: the command line, as the ``tuneseek`` script runs it."""

import sys

from tuneseek.cli import main

sys.exit(main())
