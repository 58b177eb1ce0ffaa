"""``python -m sciops`` is the ``sciops`` command."""
import sys

from sciops.cli import main

sys.exit(main())
