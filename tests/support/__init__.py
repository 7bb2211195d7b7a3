"""Test and benchmark support that is not part of the station: ground-truth scoring of the
simulator's cases and a synchronous triggered-EMG driver. Tests import it as ``support``;
benchmark scripts put ``tests/`` on ``sys.path`` first."""
