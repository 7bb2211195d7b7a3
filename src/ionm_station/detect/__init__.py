"""Free-run EMG detection: events (spikes, bursts, A- and B-trains), train time and scoring.

* :mod:`ionm_station.detect.events` — :class:`~ionm_station.detect.events.EmgEventDetector`,
  the streaming detector, and :class:`~ionm_station.detect.events.DetectedEvent`.
* :mod:`ionm_station.detect.scoring` — :func:`~ionm_station.detect.scoring.score`, detected
  events against the simulator's ground truth.
"""

from ionm_station.detect.events import DetectedEvent, EmgEventDetector, robust_sigma

__all__ = ["DetectedEvent", "EmgEventDetector", "robust_sigma"]
