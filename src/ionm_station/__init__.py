"""IONM Station: intraoperative neuromonitoring EMG workstation (research and education use only)."""

import os

# The chain's matrix products are small (the mains fit: 15 × 1000 × 8 per 0.1 s block): a
# second OpenBLAS thread gains nothing on them and busy-waits between calls, taking the core the
# GUI and acquisition need (analyze at 8 ch × 10 kHz: 1.18–1.26 → 1.09 s of CPU per 60 s). One
# BLAS thread unless the user sets otherwise; read when numpy loads, so set before any import.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
