"""Free-run EMG detection: events (spikes, bursts, A- and B-trains) and train time.

* :mod:`ionm_station.detect.events` — :class:`~ionm_station.detect.events.EmgEventDetector`,
  the streaming detector, and :class:`~ionm_station.detect.events.DetectedEvent`.

Scoring against the simulator's ground truth is test support (``tests/support/scoring.py``).
"""

from ionm_station.detect.events import DetectedEvent, EmgEventDetector, robust_sigma

__all__ = ["DetectedEvent", "EmgEventDetector", "robust_sigma"]
