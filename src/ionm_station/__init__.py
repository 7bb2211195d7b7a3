"""IONM Station: intraoperative neuromonitoring EMG workstation (research and education use only)."""

__version__ = "0.1.0"
