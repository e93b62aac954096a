"""``python -m embrecall.service serve|publish|rollback|versions ...``."""

import sys

from embrecall.service.commands import main

sys.exit(main())
