"""Signal sources: amplifier drivers and the built-in simulated amplifier, behind one interface."""
