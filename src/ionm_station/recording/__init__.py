"""Case recording (crash-safe HDF5) and EDF+ exchange (replay is a source: :mod:`ionm_station.sources.replay`).

Public API here: :class:`RecordingWriter`, :class:`Recorder`, :func:`open_recording`,
:func:`recover`; exchange in :mod:`.export` (:func:`export_edf`, :func:`info`). The file layout is specified in
``docs/recording-format.md``.
"""

from ionm_station.recording.format import CaseMetadata, RecordingError, SettingsChange
from ionm_station.recording.reader import Recording, RecoveryReport, open_recording, recover
from ionm_station.recording.recorder import Recorder, RecorderStatus
from ionm_station.recording.writer import RecordingWriter

__all__ = [
           "CaseMetadata",
           "Recorder",
           "RecorderStatus",
           "Recording",
           "RecordingError",
           "RecordingWriter",
           "RecoveryReport",
           "SettingsChange",
           "open_recording",
           "recover",
]
