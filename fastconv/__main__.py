"""``python -m fastconv``: see fastconv.cli."""
import sys

from .cli import main

sys.exit(main())
