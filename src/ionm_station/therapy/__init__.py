"""Therapy modes: EMG biofeedback (``biofeedback``) — pure numpy cores, thin shells elsewhere."""
