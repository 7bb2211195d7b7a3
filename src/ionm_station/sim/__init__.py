"""The built-in simulated amplifier: unit waveforms, scenario files and the amplifier itself.

* :mod:`ionm_station.sim.waveforms` — pure functions for MUAPs, ECG beats, CMAPs and stimulus
  artifacts, evaluated on arrays of times (s).
* :mod:`ionm_station.sim.scenario` — scenario TOML files (what happens when) and their validation.
* :mod:`ionm_station.sim.amplifier` — :class:`SimulatedAmplifier`, a deterministic
  :class:`~ionm_station.sources.base.Source` with exact ground truth for detector benchmarks.
* :mod:`ionm_station.sim.emulator` — a pseudo-terminal device that speaks our serial protocol
  (``ionm-station simulate-device``), with fault injection.
"""
