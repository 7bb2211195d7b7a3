"""Remote oversight over SDC: the pure parts, and a station and a supervisor on loopback.

Stations here are in-process sessions on the simulated amplifier (2 kHz, real time) publishing
on 127.0.0.1 with a free port; supervisors are :class:`Follower` objects. No multicast: the
discovery test lives in test_remote_processes.py, inside its own network namespace.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sdc11073 import multikey
from sdc11073.provider.subscriptionmgr_async import (AsyncioEventLoopThread,
                                                     SubscriptionsManagerPathAsync)
from sdc11073.pysoap.soapclientpool import SoapClientPool
from tests.support.certs import make_site
from tests.support.remote_procs import free_port
from tests.support.remote_procs import wait_for as until

from ionm_station.cli import main
from ionm_station.montage import load_montage
from ionm_station.profiles import load_profile
from ionm_station.remote import mdib as md
from ionm_station.remote.consumer import HoldBack, layout_of
from ionm_station.remote.follow import Follower
from ionm_station.remote.provider import Publisher, PublishSettings
from ionm_station.remote.tls import TlsError, ssl_contexts
from ionm_station.remote.transport import QueuedSubscriptionsManager, close_clients_unlocked
from ionm_station.remote.wall import Histogram, Room, Wall
from ionm_station.remote.waveforms import PeakDecimator, decimation_factor
from ionm_station.session import Session, build_source, montage_for

#: A case with one left L5 A-train 1.5 s in (everything else quiet).
TRAIN_SCENARIO = """
name = "remote_train"
description = "quiet, then an L5-L A-train"
duration_s = 60
loop = false
seed = 3
montage = "lumbar"
noise_uv = 3
drift_uv = 5
heart_rate_bpm = 64
heart_rate_variability = 0.05
ecg_scale = 1.0
mains_hz = 50
mains_offset_hz = 0.1
mains_drift_hz = 0.05
mains_drift_period_s = 30
mains_uv = 5

[[events]]
kind = "a_train"
root = "L5"
side = "L"
at_s = 1.5
duration_s = 1
peak_uv = 300
rate_hz = 120
"""


def station(scenario: str = "quiet") -> Session:
    profile = dataclasses.replace(load_profile("simulated"), sample_rate_hz=2000.0)
    montage = montage_for(profile)
    return Session(build_source(profile, montage, scenario=scenario, realtime=True), montage)


@pytest.fixture
def published(tmp_path: Path) -> Iterator[tuple[Session, Publisher, int]]:
    """A live station with an L5-L A-train coming, publishing without TLS."""
    path = tmp_path / "train.toml"
    path.write_text(TRAIN_SCENARIO)
    session = station(str(path))
    port = free_port()
    publisher = Publisher(session, PublishSettings(port=port, room="OR 7", procedure="L5-S1 TLIF",
                                                   patient_id="P-77"))
    session.start()
    yield session, publisher, port
    publisher.close()
    session.stop()


def follow(port: int, tls=None) -> tuple[Follower, Room]:
    wall = Wall()
    follower = Follower(wall, tls, [("127.0.0.1", port)])
    follower.start()
    return follower, wall.rooms[0]


# --- the pure parts ---

def test_peak_decimation_keeps_every_spike_and_does_not_depend_on_chunking() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 3, (10_000, 2)).astype(np.float32)
    x[5003, 0] = 500.0  # a one-sample spike
    x[7001, 1] = -400.0
    x[8000:8010, 1] = np.nan  # a gap
    whole = PeakDecimator(5, 2).push(0, x)
    assert whole[0] == 0 and whole[1].shape == (2000, 2)
    assert whole[1][1000, 0] == 500.0 and whole[1][1400, 1] == -400.0
    assert np.isnan(whole[1][1600:1602, 1]).all() and not np.isnan(whole[1][:, 0]).any()
    d, parts, at = PeakDecimator(5, 2), [], 0
    for n in rng.integers(1, 700, 100):
        first, out = d.push(at, x[at:at + n])
        assert first == len(np.concatenate(parts)) if parts else first == 0
        parts.append(out)
        at += n
        if at >= len(x):
            break
    np.testing.assert_array_equal(np.concatenate(parts), whole[1][:len(np.concatenate(parts))])
    assert decimation_factor(10_000) == 5 and decimation_factor(2000) == 1
    assert decimation_factor(20_000) == 10 and decimation_factor(250) == 1


def test_decimator_realigns_after_skipped_samples() -> None:
    d = PeakDecimator(4, 1)
    first, out = d.push(0, np.ones((10, 1), np.float32))
    assert (first, len(out)) == (0, 2)
    first, out = d.push(103, np.ones((9, 1), np.float32))  # 10..102 skipped
    assert first == 26 and len(out) == 2  # from 104, the next group boundary


def test_mdib_layout_reads_back_from_its_own_descriptors() -> None:
    from sdc11073.definitions_sdc import SdcV1Definitions
    from sdc11073.mdib import ProviderMdib

    layout = md.Layout.of(load_montage("combined32"), 0.0005)
    mdib = ProviderMdib.from_string(md.mdib_xml(layout), SdcV1Definitions)
    assert layout_of(list(mdib.descriptions.objects)) == layout
    handles = {d.Handle for d in mdib.descriptions.objects}
    assert not any("Sco" in type(d).__name__ for d in mdib.descriptions.objects)  # read-only
    assert md.condition_handle(0, "critical") in handles and md.wave_handle(31) in handles


def test_latency_histogram() -> None:
    h = Histogram()
    assert h.quantile(0.5) is None
    h.add(np.array([1.2, 2.0, 3.0, 100.0, -4.0, 1e9]))
    assert h.n == 6 and h.quantile(0.5) == 2.0 and h.maximum() == 10_000


def test_wall_room_limit_warning_and_lost_rooms() -> None:
    wall = Wall(limit=2)
    for i in range(2):
        wall.room(f"urn:{i}", f"http://127.0.0.1:{i}/x")
    assert wall.warning() == ""
    room, new = wall.room("urn:9", "http://x")
    assert new and "3 rooms" in wall.warning() and "at most 3" in wall.warning()
    assert wall.room("urn:9", "http://y") == (room, False) and room.url == "http://y"
    assert room.lost() and wall.audible() is None  # never connected: nothing to sound yet


# --- a station and a supervisor on loopback ---

def test_held_reports_are_applied_in_arrival_order_even_when_more_arrive_meanwhile() -> None:
    """A report that arrives (on a server thread) while the held ones are being applied waits
    its turn: applied straight away it overtook them, and the trace reports it overtook read
    as already seen and were counted lost (delivered 0.96 under load)."""
    held = HoldBack()
    assert not held.offer("waveform_report", 0)  # not holding: apply where it arrives
    held.hold()
    for i in (1, 2, 3):
        assert held.offer("waveform_report", i)
    applied: list[int] = []

    def late(i: int) -> None:  # the server thread's own path (see StationLink._receiver)
        if not held.offer("waveform_report", i):
            applied.append(i)

    def apply(_: str, i: int) -> None:
        if i == 1:  # a report arrives while the first held one is being applied
            thread = threading.Thread(target=late, args=(4,))
            thread.start()
            thread.join()
        applied.append(i)

    held.release(apply)
    assert applied == [1, 2, 3, 4]
    assert not held.offer("waveform_report", 5)  # released: apply where it arrives


def test_supervisor_follows_raise_silence_acknowledge_and_clear(published) -> None:
    session, _, port = published
    follower, room = follow(port)
    try:
        until(lambda: room.to_dict()["connection"] == "connected")
        d = room.to_dict()
        assert d["room"] == "OR 7" and d["patient_id"] == "P-77" and d["procedure"] == "L5-S1 TLIF"
        assert [t["key"] for t in d["tiles"]] == session.montage.tile_keys()

        def tile() -> dict:
            return next(t for t in room.to_dict()["tiles"] if t["key"] == "L5-L")

        until(lambda: tile()["state"] == "alarm")  # raised
        until(lambda: tile()["signal"] == "Latch" and tile()["latched"])
        station_tile = session.state().tile("L5-L")
        assert station_tile.state == "alarm" and tile()["priority"] == station_tile.priority
        assert room.to_dict()["last_alarm"]["tile"] == "L5-L"
        until(lambda: room.audible() is not None)

        session.silence(4.0)
        until(lambda: room.to_dict()["silenced"])  # silenced at the station: quiet here too
        assert room.audible() is None and follower.wall.audible() is None
        assert tile()["state"] == "alarm"
        until(lambda: not room.to_dict()["silenced"], timeout_s=30)  # the silence ran out

        session.acknowledge("L5-L")
        # acknowledged and cleared (the tile's state and its alert signal come in reports of
        # their own: under load one can arrive a moment after the other)
        until(lambda: tile()["state"] != "alarm" and tile()["signal"] == "Ack")
        assert not tile()["latched"]
        assert room.to_dict()["last_alarm"]["signal"] == "Ack"
        assert session.state().tile("L5-L").state != "alarm"
        kinds = [e["kind"] for e in room.to_dict()["events"]]
        assert "alarm_ack" in kinds and "alarm_silence" in kinds
        stream = room.to_dict()["stream"]
        assert stream["received"] > 0 and stream["delivered"] == 1.0
    finally:
        follower.stop()


def test_traces_arrive_at_the_published_rate(published) -> None:
    _, _, port = published
    follower, room = follow(port)
    try:
        until(lambda: room.stats.received >= 6000)  # 3 s at 2 kHz
        assert room.layout is not None and room.layout.sample_period_s == pytest.approx(0.0005)
        assert room.waves is not None and room.waves.n_channels == 16
        assert room.stats.missing == 0
        latest = room.waves.latest(2000).data  # (the chain's first fraction of a second is NaN)
        assert np.isfinite(latest).all() and latest.std() > 0.5  # noise, not zeros
    finally:
        follower.stop()


def test_tls_with_the_sites_certificates_and_unknown_ones_refused(tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    other = make_site(tmp_path / "other")
    session = station()
    port = free_port()
    publisher = Publisher(session, PublishSettings(port=port, certs=site["station"]))
    session.start()
    followers = []
    try:
        assert publisher.url.startswith("https://")
        good, room = follow(port, ssl_contexts(site["supervisor"]))
        followers.append(good)
        until(lambda: room.to_dict()["connection"] == "connected")
        until(lambda: room.stats.received > 0)
        stranger, refused = follow(port, ssl_contexts(other["supervisor"]))
        plain, unencrypted = follow(port, None)
        followers += [stranger, plain]
        until(lambda: refused.to_dict()["connection"] == "refused")
        assert "TLS" in refused.to_dict()["reason"]
        time.sleep(1.5)
        for r in (refused, unencrypted):
            assert r.to_dict()["connects"] == 0 and r.stats.received == 0 and r.lost()
        with publisher.provider._subscriptions_managers["StateEvent"]._subscriptions.lock:
            subscribers = list(publisher.provider._subscriptions_managers["StateEvent"]
                               ._subscriptions.objects)
        assert len(subscribers) == 2  # only the site's supervisor: its reports and its traces
    finally:
        for f in followers:
            f.stop()
        publisher.close()
        session.stop()


def test_a_frozen_supervisor_delays_nothing(published) -> None:
    """A supervisor process stopped with SIGSTOP: the station's publisher and another
    supervisor go on as if it were not there."""
    import signal

    session, publisher, port = published
    frozen = subprocess.Popen([sys.executable, "-m", "ionm_station", "supervise", "--headless",
                               "--insecure", "--connect", f"127.0.0.1:{port}"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    follower, room = follow(port)
    try:
        until(lambda: room.stats.received > 2000)
        assert frozen.stdout is not None
        until(lambda: "OR 7: CONNECTED" in frozen.stdout.readline(), timeout_s=30)
        frozen.send_signal(signal.SIGSTOP)
        start = room.stats.received
        worst = 0.0
        t0 = time.monotonic()
        while time.monotonic() - t0 < 6:
            assert publisher.worker.health().state == "running"
            assert not room.lost()
            worst = max(worst, publisher.worker.health().heartbeat_age_s)
            time.sleep(0.05)
        assert room.stats.received - start > 6 * 2000 * 0.8
        assert worst < 0.5
        assert session.state().monitoring
    finally:
        frozen.send_signal(signal.SIGCONT)
        frozen.terminate()
        frozen.wait(10)
        follower.stop()


# --- the command line ---

def test_publishing_arguments_are_checked_in_one_line(capsys: pytest.CaptureFixture[str],
                                                       tmp_path: Path) -> None:
    cases = [
        (["run", "--headless", "--room", "OR 1"], "--room applies to --publish-sdc"),
        (["run", "--headless", "--publish-sdc"], "give --certs DIR (TLS) or --insecure"),
        (["run", "--headless", "--publish-sdc", "--insecure", "--certs", str(tmp_path)],
         "not both and not neither"),
        (["run", "--headless", "--publish-sdc", "--certs", str(tmp_path / "none"), "--seconds",
          "1"], "no such folder"),
        (["run", "--headless", "--publish-sdc", "--certs", str(tmp_path), "--seconds", "1"],
         "cert.pem: file not found"),
        (["run", "--headless", "--publish-sdc", "--insecure", "--sdc-address", "192.0.2.7",
          "--seconds", "1"], "not an address of this machine"),
        (["supervise", "--headless", "--insecure"], "give --connect"),
        (["supervise", "--headless", "--insecure", "--connect", "no-such-host.invalid"],
         "unknown host"),
        (["supervise", "--headless", "--insecure", "--connect", "127.0.0.1:99999"],
         "port 1–65535"),
        (["supervise", "--insecure", "--connect", "127.0.0.1", "--json", "x.json"],
         "--json applies to --headless"),
    ]
    for argv, expected in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert expected in err and len(err.splitlines()) == 1, (argv, err)


def test_bad_certificate_files_are_one_line(tmp_path: Path) -> None:
    site = make_site(tmp_path / "site")
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("ca.pem", "cert.pem"):
        (broken / name).write_bytes((site["station"] / name).read_bytes())
    (broken / "key.pem").write_bytes((site["supervisor"] / "key.pem").read_bytes())  # not its key
    with pytest.raises(TlsError, match="not a certificate and its private key"):
        ssl_contexts(broken)
    (broken / "key.pem").write_bytes((site["station"] / "key.pem").read_bytes())
    (broken / "ca.pem").write_text("not a certificate\n")
    with pytest.raises(TlsError, match="ca.pem: not a CA certificate"):
        ssl_contexts(broken)


def test_a_taken_port_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        code = main(["run", "--headless", "--publish-sdc", "--insecure", "--sdc-port",
                     str(taken), "--seconds", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "cannot serve SDC there" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("mended", [True, False])
def test_ending_every_subscription_while_a_supervisor_unsubscribes(mended: bool) -> None:
    """``Publisher.close`` ends every subscription. sdc11073 closed them iterating the live set
    after letting go of its lock, and a supervisor's Unsubscribe, served meanwhile on the HTTP
    server's thread, took one out of that set: "Set changed size during iteration" (the remote
    wall's test, once in a CI run). Here the first subscription closed has another thread take
    a second out under the lock, as the server does. Mended, that thread waits until the closing
    is over and every subscription is closed; the library's own method is shown to raise, so
    the test can fail."""
    manager = object.__new__(QueuedSubscriptionsManager)  # only what ending them needs
    manager._logger = logging.getLogger("test")
    manager._subscriptions = multikey.MultiKeyLookup()
    closed: list[str] = []

    def unsubscribe(sub: object) -> None:  # as the server does
        with manager._subscriptions.lock:
            if sub in manager._subscriptions.objects:
                manager._subscriptions.remove_object(sub)

    class Subscription:
        def __init__(self, name: str) -> None:
            self.name = name

        def close_by_subscription_manager(self) -> None:
            closed.append(self.name)
            if len(closed) == 1:
                other = next(s for s in manager._subscriptions.objects if s.name not in closed)
                unsubscriber = threading.Thread(target=unsubscribe, args=(other,))
                unsubscriber.start()
                unsubscriber.join(0.3)  # mended: it waits for the lock

    for name in "abc":
        manager._subscriptions.add_object(Subscription(name))
    if mended:
        manager._end_all_subscriptions(False)
        assert sorted(closed) == ["a", "b", "c"] and not manager._subscriptions.objects
    else:
        with pytest.raises(RuntimeError, match="changed size during iteration"):
            SubscriptionsManagerPathAsync._end_all_subscriptions(manager, False)


@pytest.mark.parametrize("mended", [True, False])
def test_closing_a_subscribers_connection_while_a_report_is_sent_never_deadlocks(
        mended: bool) -> None:
    """sdc11073's soap client pool closed a connection on the event loop while holding its
    lock, and a report sent on that loop meanwhile asked the pool for its client: the
    housekeeping thread and the loop waited for each other for good (a whole test run hung in
    a publisher's teardown, its supervisor blocked behind them). With the pool mended the close
    ends; the library's own pool is shown to hang, so the test can fail."""
    class Client:
        async def async_close(self) -> None:
            await asyncio.sleep(0.2)  # the connection's shutdown takes a moment

    pool = SoapClientPool(lambda netloc, encodings: Client(), "test")
    if mended:
        close_clients_unlocked(pool)
    loop = AsyncioEventLoopThread("loop", logging.LoggerAdapter(logging.getLogger("t"), {}))
    loop.start()
    until(lambda: loop.running, 5.0)
    pool.async_loop_subscr_mgr = loop
    pool.get_soap_client("peer:1", ["gzip"], "old subscription")

    async def send_a_report() -> None:  # a notification to another subscriber of that peer
        await asyncio.sleep(0.05)
        pool.get_soap_client("peer:1", ["gzip"], "new subscription")

    sent = asyncio.run_coroutine_threadsafe(send_a_report(), loop.loop)
    closer = threading.Thread(target=pool.forget_usr, args=("peer:1", "old subscription"),
                              daemon=True)
    closer.start()
    closer.join(3.0)
    assert closer.is_alive() is not mended
    if mended:
        sent.result(3.0)
        loop.stop()
