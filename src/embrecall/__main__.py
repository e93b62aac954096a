import sys

from embrecall.cli import main

sys.exit(main())
