"""python -m svdcodec {encode,decode,info,compare} ... runs the svdi-* tools."""

import sys

from .cli import main

sys.exit(main())
