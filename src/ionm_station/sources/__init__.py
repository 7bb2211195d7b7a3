"""Signal sources behind one interface: amplifier drivers (serial, BrainFlow) and replay of
recorded files. The simulated amplifier and the serial device emulator live in :mod:`ionm_station.sim`."""
