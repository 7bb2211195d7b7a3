"""``python -m ionm_station`` = ``ionm-station``."""

import sys

from ionm_station.cli import main

sys.exit(main())
