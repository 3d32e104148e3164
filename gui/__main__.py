"""``python -m gui``: the same as the ``mri-classifier`` command."""

import sys

from gui.cli import main

sys.exit(main())
