"""``python -m gui``: the same as the ``mri-classifier`` command."""

import sys

from gui.launcher import main

sys.exit(main())
