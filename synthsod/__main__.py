"""``python -m synthsod``: the same as the ``synthsod`` console command."""

import sys

from synthsod.cli import main

sys.exit(main())
