"""Triggered EMG: stimulus-locked CMAPs, pedicle-screw threshold hunting, train-of-four."""
