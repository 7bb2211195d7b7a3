"""Beat-to-beat variation of a heartbeat's misfit, learnt per beat class and channel: an
optimal basis set (Niazy et al. 2005, the OBS of ballistocardiogram removal in EEG-fMRI).

A template fitted with gain, shift and stretch leaves what the heartbeat changes from beat to
beat in its own shape: on MIT-BIH record 100 the QRS onset's notch and the small wave ~30 ms
before the R peak move by a few ms and change size from one beat to the next, leaving 20–40 µV
on a channel with 300–600 µV of heartbeat. Those changes recur in a few patterns. The last
:attr:`BeatVariation.beats` residuals of a class on a channel (what the fit left over the
QRS) hold them; their leading principal components are the patterns, and a new beat's
residual projected onto them is the part of its misfit that is such a change. Amplifier
noise and EMG do not recur at the same place in every beat, so they spread thinly over every
component and a new beat's noise or EMG projects onto the few leading ones only weakly; each
coefficient is also bounded by :attr:`BeatVariation.clip` × its typical size over the stored
beats, so a MUAP that happens to resemble the patterns loses at most that much of each of
them. (The components are not centred: the first one is mostly the mean misfit.) Residuals
measured less well, to start the fit with (a class's first beats against the median they
formed), are kept as provisional and forgotten on a channel once it holds
:attr:`BeatVariation.provisional_until` others.

Pure numpy; the caller (:class:`ionm_station.dsp.ecg.EcgCanceller`) decides which channels'
residuals are stored and which are corrected.
"""

from __future__ import annotations

import numpy as np

#: Eigenvalues of the kept residuals' Gram matrix below this fraction of the largest are
#: rounding, not patterns: their components are not fitted.
EIGENVALUE_FLOOR = 1e-9


class BeatVariation:
    """Per class and channel, the last ``beats`` residuals (µV, ``length`` samples each) and
    their Gram matrix, kept up to date one beat at a time. Holds 8 × ``beats`` × ``length``
    bytes per channel of each class that keeps one (64 channels, 32 beats of a 180 ms core at
    20 kHz: 59 MB per class).

    Args:
        n_classes: beat classes.
        n_channels: channels.
        length: samples per residual.
        beats: residuals kept per class and channel (the oldest is replaced).
        components: leading principal components fitted to a new residual (on a channel
            with fewer residuals kept, as many as it has: the others are rounding).
        min_beats: residuals needed on a channel before it is corrected (more than ``beats``:
            never).
        clip: bound of each component's coefficient, in RMS coefficients over the kept beats.
        provisional_until: a channel's provisional residuals (see :meth:`add`) are forgotten
            once it holds this many others.
    """

    def __init__(self, n_classes: int, n_channels: int, length: int, beats: int = 32,
                 components: int = 3, min_beats: int = 8, clip: float = 3.0,
                 provisional_until: int = 4) -> None:
        if not 0 < components <= beats:
            raise ValueError(f"need 0 < components ({components}) <= beats ({beats})")
        if clip <= 0.0:
            raise ValueError(f"clip must be positive, not {clip}")
        self.n_channels, self.length, self.beats = n_channels, length, beats
        self.components, self.min_beats, self.clip = components, min_beats, clip
        self.provisional_until = provisional_until
        # per class, allocated with its first stored residual (most classes never get one)
        self._kept: dict[int, np.ndarray] = {}   # (channels, beats, length) µV
        self._gram: dict[int, np.ndarray] = {}   # (channels, beats, beats) µV²
        self._count = np.zeros((n_classes, n_channels), dtype=np.int64)
        self._next = np.zeros((n_classes, n_channels), dtype=np.int64)
        # per slot: holds a residual; holds a provisional one
        self._filled = np.zeros((n_classes, n_channels, beats), dtype=bool)
        self._provisional = np.zeros((n_classes, n_channels, beats), dtype=bool)

    def clear(self, k: int, channels: np.ndarray | None = None) -> None:
        """Forget class ``k``'s residuals on ``channels`` (bool per channel; None: all)."""
        sel = np.ones(self.n_channels, bool) if channels is None else channels
        self._count[k, sel] = 0
        self._next[k, sel] = 0
        self._filled[k, sel] = False
        self._provisional[k, sel] = False
        if k in self._kept:
            self._kept[k][sel] = 0.0
            self._gram[k][sel] = 0.0

    def shift(self, k: int, d: int) -> None:
        """Move class ``k``'s residuals ``d`` samples later in their window (earlier for a
        negative ``d``; zeros move in), as its templates were moved."""
        if k not in self._kept or d == 0:
            return
        kept = self._kept[k]
        move_later(kept, d)
        self._gram[k] = kept @ kept.transpose(0, 2, 1)

    def add(self, k: int, residual: np.ndarray, channels: np.ndarray,
            provisional: bool = False) -> None:
        """Keep ``residual`` (channels × length µV) of a beat of class ``k`` on ``channels``
        (bool per channel), replacing each channel's oldest. A ``provisional`` residual (one
        measured less well, to start with) is forgotten once its channel holds
        ``provisional_until`` others."""
        sel = np.flatnonzero(channels)
        if not len(sel):
            return
        if k not in self._kept:
            self._kept[k] = np.zeros((self.n_channels, self.beats, self.length))
            self._gram[k] = np.zeros((self.n_channels, self.beats, self.beats))
        kept, gram = self._kept[k], self._gram[k]
        slot = self._next[k, sel]
        kept[sel, slot] = residual[sel]
        # (channel by channel: kept[sel] would copy every kept residual of those channels)
        dots = np.stack([kept[s] @ residual[s] for s in sel.tolist()])
        gram[sel, slot, :] = dots
        gram[sel, :, slot] = dots
        self._next[k, sel] = (slot + 1) % self.beats
        self._count[k, sel] += ~self._filled[k, sel, slot]  # (forgotten slots may lie anywhere)
        self._filled[k, sel, slot] = True
        self._provisional[k, sel, slot] = provisional
        if provisional:
            return
        held = self._provisional[k].sum(axis=1)
        for ch in np.flatnonzero((held > 0) & (self._count[k] - held >= self.provisional_until)
                                 ).tolist():
            slots = np.flatnonzero(self._provisional[k, ch])
            kept[ch, slots] = 0.0
            gram[ch, slots, :] = 0.0
            gram[ch, :, slots] = 0.0
            self._filled[k, ch, slots] = self._provisional[k, ch, slots] = False
            self._count[k, ch] -= len(slots)

    def predict(self, k: int, residual: np.ndarray, channels: np.ndarray) -> np.ndarray:
        """The part of ``residual`` (channels × length µV) of a beat of class ``k`` that the
        leading components of the kept residuals explain, on those of ``channels`` (bool per
        channel) with at least ``min_beats`` kept; zero elsewhere (µV, same shape)."""
        use = channels & (self._count[k] >= self.min_beats)
        if not use.any():
            return np.zeros_like(residual)
        # on every channel at once (no copies of the kept residuals), the unused ones masked:
        lam, u = np.linalg.eigh(self._gram[k])          # ascending eigenvalues
        lam, u = lam[:, -self.components:], u[:, :, -self.components:]
        # (a component far below the leading one is rounding, not a pattern)
        real = (lam > EIGENVALUE_FLOOR * lam[:, -1:]) & use[:, None]
        root = np.sqrt(np.where(real, lam, 1.0))
        # unit-norm components (channels, m, length): u_i' R / sqrt(λ_i)
        basis = np.matmul(u.transpose(0, 2, 1), self._kept[k]) / root[:, :, None]
        coef = np.matmul(basis, residual[:, :, None])[:, :, 0]
        bound = self.clip * root / np.sqrt(np.maximum(self._count[k], 1))[:, None]
        coef = np.where(real, np.clip(coef, -bound, bound), 0.0)
        return np.matmul(coef[:, None, :], basis)[:, 0, :]


def move_later(a: np.ndarray, d: int) -> None:
    """Move ``a``'s content ``d`` samples later along its last axis, in place (earlier for a
    negative ``d``); zeros move in."""
    if d > 0:
        a[..., d:] = a[..., :-d].copy()
        a[..., :d] = 0.0
    elif d < 0:
        a[..., :d] = a[..., -d:].copy()
        a[..., d:] = 0.0
