"""Triggered-EMG settings a hardware profile may carry (its ``[triggered]`` table)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ionm_station.triggered.cmap import CmapCriteria
from ionm_station.triggered.screws import REGIONS, ScrewLog


@dataclass(frozen=True)
class TriggeredSettings:
    """How stimuli are scored and screws classified.

    Attributes:
        region: spinal region whose threshold bands classify screws (a key of
            :data:`~ionm_station.triggered.screws.REGIONS`: lumbar, thoracic, cervical).
        max_ma: highest current a threshold hunt delivers (mA).
        criteria: when a stimulus-locked deflection counts as a CMAP (latency window ms,
            amplitude µV, signal-to-noise ratio, artifact blanking ms).
    """

    region: str = "lumbar"
    max_ma: float = 20.0
    criteria: CmapCriteria = field(default_factory=CmapCriteria)

    def screw_log(self) -> ScrewLog:
        """An empty screw log classifying by this region, for hunts up to :attr:`max_ma`."""
        return ScrewLog(region=REGIONS[self.region], max_ma=self.max_ma)
