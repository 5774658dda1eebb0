"""``python -m dlnotes.serve --model PATH --port N``: see :mod:`dlnotes.serve.cli`."""

import sys

from dlnotes.serve.cli import main

sys.exit(main())
