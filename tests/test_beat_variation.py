"""The beat-to-beat variation of a heartbeat's misfit (ionm_station.dsp.beat_variation)."""

from __future__ import annotations

import numpy as np
import pytest

from ionm_station.dsp.beat_variation import BeatVariation, move_later

LENGTH = 400


def patterns() -> tuple[np.ndarray, np.ndarray]:
    """Two smooth misfit shapes (unit peak): a wave that moves, a notch that changes size."""
    t = np.arange(LENGTH)
    moves = np.exp(-0.5 * ((t - 150) / 12.0) ** 2) * (t - 150) / 12.0
    notch = np.exp(-0.5 * ((t - 230) / 6.0) ** 2)
    return moves / np.abs(moves).max(), notch


def misfits(rng: np.random.Generator, n: int, noise_uv: float = 2.0) -> np.ndarray:
    """``n`` residuals (n, 2 channels, LENGTH) µV: 10 and 6 µV typical of the two patterns on
    channel 0, noise alone on channel 1."""
    moves, notch = patterns()
    out = rng.normal(0.0, noise_uv, (n, 2, LENGTH))
    out[:, 0] += rng.normal(0.0, 10.0, (n, 1)) * moves + rng.normal(0.0, 6.0, (n, 1)) * notch
    return out


def learnt(rng: np.random.Generator, n: int = 32, **kwargs) -> BeatVariation:
    variation = BeatVariation(2, 2, LENGTH, **kwargs)
    for r in misfits(rng, n):
        variation.add(0, r, np.array([True, True]))
    return variation


def test_a_recurring_misfit_is_predicted_and_noise_is_left() -> None:
    rng = np.random.default_rng(1)
    variation = learnt(rng)
    moves, notch = patterns()
    noise = rng.normal(0.0, 2.0, (2, LENGTH))
    misfit = 15.0 * moves - 8.0 * notch
    residual = noise + np.vstack((misfit, np.zeros(LENGTH)))
    est = variation.predict(0, residual, np.array([True, True]))
    left = residual - est
    # most of the misfit goes (what stays is the components' own noise from 32 beats)
    assert np.std(left[0] - noise[0]) < 0.25 * np.std(misfit), np.std(left[0] - noise[0])
    # noise alone loses a few components' worth of its power (3 of 400 dimensions)
    assert np.std(est[1]) < 0.2 * np.std(noise[1]), np.std(est[1])


def test_a_muap_unlike_the_misfits_is_left() -> None:
    """A 40 µV p-p spike where no misfit lies, on a beat with a misfit: the misfit is
    predicted as without it, and under a tenth of the spike is taken."""
    rng = np.random.default_rng(2)
    variation = learnt(rng)
    moves, _ = patterns()
    misfit = np.vstack((12.0 * moves, np.zeros(LENGTH)))
    spike = np.zeros((2, LENGTH))
    t = np.arange(LENGTH)
    spike[0] = 20.0 * np.exp(-0.5 * ((t - 320) / 1.5) ** 2) * np.sign(t - 320)
    both = np.array([True, True])
    alone = variation.predict(0, misfit, both)
    with_spike = variation.predict(0, misfit + spike, both)
    assert np.std(misfit[0] - alone[0]) < 0.25 * np.std(misfit[0]), np.std(misfit[0] - alone[0])
    taken = with_spike[0] - alone[0]
    assert np.ptp(taken) < 0.1 * np.ptp(spike[0]), np.ptp(taken)


def test_coefficients_are_bounded_by_the_typical_misfit() -> None:
    """A residual 20 × the usual variation (something else on the QRS) loses at most
    ``clip`` × the usual coefficient of each component."""
    rng = np.random.default_rng(3)
    variation = learnt(rng, n=20, clip=3.0)  # (fewer than it keeps: the RMS is over 20)
    moves, _ = patterns()
    residual = np.vstack((200.0 * moves, np.zeros(LENGTH)))
    est = variation.predict(0, residual, np.array([True, False]))
    assert np.abs(est[0]).max() < 3.0 * 10.0 * 1.3, np.abs(est[0]).max()
    assert np.abs(est[0]).max() > 3.0 * 10.0 * 0.7, np.abs(est[0]).max()
    assert not est[1].any()  # not asked for


def test_too_few_beats_predict_nothing_and_clear_forgets() -> None:
    rng = np.random.default_rng(4)
    variation = learnt(rng, n=7, min_beats=8)
    residual = misfits(rng, 1)[0]
    assert not variation.predict(0, residual, np.array([True, True])).any()
    variation.add(0, misfits(rng, 1)[0], np.array([True, False]))
    est = variation.predict(0, residual, np.array([True, True]))
    assert est[0].any() and not est[1].any()
    for r in misfits(rng, 8):  # channel 1 reaches min_beats
        variation.add(0, r, np.array([False, True]))
    variation.clear(0, np.array([True, False]))
    est = variation.predict(0, residual, np.array([True, True]))
    assert not est[0].any() and est[1].any()  # channel 0 forgotten, channel 1 kept
    variation.clear(0)
    assert not variation.predict(0, residual, np.array([True, True])).any()
    assert not variation.predict(1, residual, np.array([True, True])).any()  # another class


def assert_same_prediction(a: BeatVariation, b: BeatVariation, residual: np.ndarray) -> None:
    """Class 0 of ``a`` and ``b`` predict the same from ``residual`` on both channels."""
    both = np.array([True, True])
    np.testing.assert_allclose(a.predict(0, residual, both), b.predict(0, residual, both),
                               atol=1e-9)


def test_the_oldest_beats_are_replaced() -> None:
    """After more beats than it keeps, the prediction is that of the last ``beats`` alone."""
    rng = np.random.default_rng(5)
    beats = misfits(rng, 50)
    rolling, last = BeatVariation(1, 2, LENGTH, beats=16), BeatVariation(1, 2, LENGTH, beats=16)
    for i, r in enumerate(beats):
        rolling.add(0, r, np.array([True, True]))
        if i >= len(beats) - 16:
            last.add(0, r, np.array([True, True]))
    assert_same_prediction(rolling, last, misfits(rng, 1)[0])


def test_provisional_residuals_predict_until_enough_others_are_kept() -> None:
    """Provisional residuals count towards ``min_beats`` and predict; once a channel holds
    ``provisional_until`` others they are forgotten there, and the prediction is that of the
    others alone (on the other channel, still short of them, they stay)."""
    rng = np.random.default_rng(8)
    first, later = misfits(rng, 3), misfits(rng, 4)
    variation = BeatVariation(1, 2, LENGTH, min_beats=3, provisional_until=4)
    both, only_0 = np.array([True, True]), np.array([True, False])
    for r in first:
        variation.add(0, r, both, provisional=True)
    residual = misfits(rng, 1)[0]
    assert variation.predict(0, residual, both).any(axis=1).all()
    for r in later:
        variation.add(0, r, only_0)
    others = BeatVariation(1, 2, LENGTH, min_beats=3)
    for r in later:
        others.add(0, r, only_0)
    for r in first:
        others.add(0, r, np.array([False, True]))
    assert_same_prediction(variation, others, residual)


def test_forgotten_slots_refill_before_the_ring_replaces_a_kept_residual() -> None:
    """A residual kept before the provisional ones, then more than the ring holds: the count
    never exceeds what is kept, and the prediction is that of the last ``beats`` others."""
    rng = np.random.default_rng(9)
    both = np.array([True, True])
    variation = BeatVariation(1, 2, LENGTH, beats=8, min_beats=3, provisional_until=2)
    variation.add(0, misfits(rng, 1)[0], both)
    for r in misfits(rng, 3):
        variation.add(0, r, both, provisional=True)
    later = misfits(rng, 12)
    for r in later:
        variation.add(0, r, both)
        assert (variation._count[0] == variation._filled[0].sum(axis=1)).all()
        assert (variation._count[0] <= 8).all()
    last = BeatVariation(1, 2, LENGTH, beats=8, min_beats=3)
    for r in later[-8:]:
        last.add(0, r, both)
    assert_same_prediction(variation, last, misfits(rng, 1)[0])


def test_a_shift_moves_the_kept_misfits_with_the_templates() -> None:
    """Moved 25 samples later, the kept misfits predict a moved beat as the original ones
    predicted the beat where it was."""
    rng = np.random.default_rng(6)
    beats = misfits(rng, 32)
    variation = BeatVariation(1, 2, LENGTH)
    for r in beats:
        variation.add(0, r, np.array([True, True]))
    variation.shift(0, 25)
    moved = BeatVariation(1, 2, LENGTH)
    for r in beats:
        shifted = np.zeros_like(r)
        shifted[:, 25:] = r[:, :-25]
        moved.add(0, shifted, np.array([True, True]))
    assert_same_prediction(variation, moved, misfits(rng, 1)[0])


def test_move_later_moves_content_and_zeros_come_in() -> None:
    a = np.arange(1.0, 7.0).reshape(1, 6)
    later, earlier, same = a.copy(), a.copy(), a.copy()
    move_later(later, 2)
    move_later(earlier, -2)
    move_later(same, 0)
    np.testing.assert_array_equal(later, [[0, 0, 1, 2, 3, 4]])
    np.testing.assert_array_equal(earlier, [[3, 4, 5, 6, 0, 0]])
    np.testing.assert_array_equal(same, a)


def test_fewer_residuals_kept_than_components_fit_as_many_as_there_are() -> None:
    """Fitted from 4 kept residuals with 5 components (fewer kept than components, as on the
    canceller's first beats, which it fits from VARIATION_MIN_BEATS kept): the misfit in their
    span is predicted, finite and the same as with 4 components (the fifth eigenvalue is
    rounding), and noise alone still loses little (4 of 400 dimensions)."""
    rng = np.random.default_rng(5)
    kept = misfits(rng, 4)
    both = np.array([True, True])
    five = BeatVariation(1, 2, LENGTH, beats=32, components=5, min_beats=4)
    four = BeatVariation(1, 2, LENGTH, beats=32, components=4, min_beats=4)
    for r in kept:
        five.add(0, r, both)
        four.add(0, r, both)
    moves, notch = patterns()
    noise = rng.normal(0.0, 2.0, (2, LENGTH))
    residual = noise + np.vstack((12.0 * moves - 5.0 * notch, np.zeros(LENGTH)))
    est = five.predict(0, residual, both)
    assert np.isfinite(est).all()
    np.testing.assert_allclose(est, four.predict(0, residual, both), atol=1e-9)
    assert np.std(residual[0] - est[0] - noise[0]) < 0.5 * np.std(residual[0] - noise[0])
    assert np.std(est[1]) < 0.25 * np.std(noise[1]), np.std(est[1])


def test_impossible_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="components"):
        BeatVariation(1, 2, LENGTH, beats=4, components=5)
    with pytest.raises(ValueError, match="clip"):
        BeatVariation(1, 2, LENGTH, clip=0.0)
