"""The station side of remote oversight: an SDC provider fed from the station's own state.

:class:`Publisher` (``run --publish-sdc``) serves the MDIB of :mod:`.mdib` on a fixed address
and port; :class:`PublisherWorker`, a supervised worker of the session, keeps it up to date.
It reads only what every view reads — :meth:`Session.state`, the clean ring with its own
cursor and the event log — never the window, and never makes the station wait:

* every :data:`POLL_S` it compares the state with what it last published and commits what
  changed: the tiles' alert conditions and signals (acknowledge and silence included), the
  technical conditions, the tile metrics, TOF and screws, the event lines, and every
  :data:`HEARTBEAT_S` the case time and the station's clock (a supervisor that hears nothing
  for a second knows the station is gone);
* it decimates the new clean samples (:class:`~.waveforms.PeakDecimator`, ≤ 2 kHz) and sends
  them in batches of ``batch_s`` (0.1 s), each a real-time sample array per channel whose
  determination time dates its first sample so that no sample of the batch (each one sample
  period after the one before) is dated later than the pass that found it in the clean ring:
  a supervisor's latency measured from these times is never less than the true one;
* notifications are queued per supervisor (:mod:`.transport`): a slow or dead supervisor
  costs the station nothing but the queue it is dropped from.

Should the worker fail, the session's supervisor restarts it and the station shows REMOTE VIEW
OFF (an advisory) meanwhile; monitoring goes on untouched.
"""

from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
from lxml import etree
from sdc11073.definitions_sdc import SdcV1Definitions
from sdc11073.location import SdcLocation
from sdc11073.mdib import ProviderMdib
from sdc11073.provider import SdcProvider
from sdc11073.provider.providerimpl import provider_components_async_factory
from sdc11073.xml_types import pm_types
from sdc11073.xml_types.actions import Actions
from sdc11073.xml_types.dpws_types import ThisDeviceType, ThisModelType

from ionm_station import __version__
from ionm_station.errors import IonmError
from ionm_station.io.annotations import annotation_text
from ionm_station.pipeline.state import StationState
from ionm_station.pipeline.technical import HEADLINES
from ionm_station.pipeline.worker import Worker
from ionm_station.remote import DEFAULT_PORT
from ionm_station.remote import mdib as md
from ionm_station.remote.discovery import station_discovery, station_epr, station_url
from ionm_station.remote.tls import ssl_contexts
from ionm_station.remote.transport import (
    QueuedSubscriptionsManager,
    SdcServer,
    close_clients_unlocked,
    route_library_log,
)
from ionm_station.remote.waveforms import PeakDecimator, decimation_factor
from ionm_station.session import Session

#: The publisher's pass (s): how soon a state change leaves the station.
POLL_S = 0.01
#: Case time and station clock are published this often (s): the supervisor's heartbeat.
HEARTBEAT_S = 0.25
#: Event rate window (s of signal).
RATE_WINDOW_S = 60.0
#: Name of the publisher worker (its fault is the REMOTE VIEW OFF technical alarm).
WORKER_NAME = "sdc-publisher"
#: Longest subscription a supervisor is granted before it must renew (s).
MAX_SUBSCRIPTION_S = 15
#: A notification not delivered within this is failed, and its subscriber dropped (s).
SEND_TIMEOUT_S = 1.0

_MSG, _PM = f"{{{md.MSG_NS}}}", f"{{{md.PM_NS}}}"
_XSI_TYPE = f"{{{md.XSI_NS}}}type"
_NSMAP = {"msg": md.MSG_NS, "pm": md.PM_NS, "xsi": md.XSI_NS}

log = logging.getLogger("ionm_station")


@dataclass(frozen=True)
class PublishSettings:
    """How a station publishes (``run --publish-sdc`` and its options).

    Attributes:
        address: this machine's address to serve on (its interface carries WS-Discovery).
        port: TCP port of the SDC server.
        room: the room's name (location context), e.g. ``OR 3``.
        discoverable: take part in WS-Discovery (multicast), else serve only by address.
        certs: certificate folder (:mod:`.tls`); None: plain HTTP (``--insecure``).
        patient_id, procedure: the case (patient context; procedure metric).
        batch_s: seconds of trace per waveform report.
    """

    address: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    room: str = ""
    discoverable: bool = False
    certs: Path | None = None
    patient_id: str = ""
    procedure: str = ""
    batch_s: float = 0.1


class Publisher:
    """The SDC provider of one session, serving from construction until :meth:`close`.

    Raises:
        IonmError: the address cannot be served on (not this machine's, port taken), or the
            certificate folder is unusable — one line each.
    """

    def __init__(self, session: Session, settings: PublishSettings) -> None:
        route_library_log()
        tls = ssl_contexts(settings.certs)
        rate = session.info.sample_rate_hz
        factor = decimation_factor(rate)
        self.layout = md.Layout.of(session.montage, factor / rate)
        self.mdib = ProviderMdib.from_string(md.mdib_xml(self.layout), SdcV1Definitions)
        where = f"{settings.address}:{settings.port}"
        try:
            self._server = SdcServer(settings.address, settings.port,
                                         tls.server_context if tls else None, ["gzip"])
        except OSError as exc:
            raise IonmError(f"--sdc-address/--sdc-port {where}: cannot serve SDC there "
                            f"({exc.strerror or exc})") from None
        self._discovery = station_discovery(settings.address, settings.discoverable)
        components = provider_components_async_factory()
        components.subscriptions_manager_class = {"StateEvent": QueuedSubscriptionsManager,
                                                  "Set": QueuedSubscriptionsManager}
        room = settings.room or where
        self.provider = SdcProvider(
            self._discovery,
            ThisModelType(manufacturer="IONM Station project", manufacturer_url="",
                          model_name="IONM Station", model_number=__version__, model_url="",
                          presentation_url=""),
            ThisDeviceType(friendly_name=f"IONM Station {room}", firmware_version=__version__,
                           serial_number=station_epr(settings.address, settings.port).hex),
            self.mdib, epr=station_epr(settings.address, settings.port), validate=False,
            ssl_context_container=tls, max_subscription_duration=MAX_SUBSCRIPTION_S,
            socket_timeout=SEND_TIMEOUT_S, components=components)
        close_clients_unlocked(self.provider._soap_client_pool)  # (see there)
        self._server.start()
        self.provider.start_all(start_rtsample_loop=False, shared_http_server=self._server)
        self.provider.set_location(SdcLocation(fac="IONM", poc="OR", rm=room))
        self._set_patient(settings.patient_id)
        self.url = station_url(settings.address, settings.port, tls is not None)
        waveforms = self.provider.hosted_services.waveform_service.hosting_service
        self.worker = PublisherWorker(session, self.mdib, waveforms.subscriptions_manager,
                                      self.layout, factor, settings)
        session.supervise(self.worker)
        self.worker.start()

    def close(self) -> None:
        """Stop publishing: supervisors are told (SubscriptionEnd), discovery says Bye."""
        self.worker.stop()
        self.provider.stop_all(send_subscription_end=True)
        self._server.stop()
        self._discovery.stop()

    def _set_patient(self, patient_id: str) -> None:
        with self.mdib.context_state_transaction() as tr:
            state = tr.mk_context_state(md.PATIENT, set_associated=True)
            state.Identification = [pm_types.InstanceIdentifier(
                root="urn:ionm-station:patient-id", extension_string=patient_id or None)]


def _presence(kind: str | None, new: str | None) -> Any:
    """Signal presence of an alarm condition ``kind`` when the tile's condition becomes
    ``new``: an alarm that leaves without a higher one taking its place was acknowledged
    (the alarm engine latches alarms until then)."""
    if kind == new:
        return pm_types.AlertSignalPresence.ON
    if new is None or new == "activity":
        return pm_types.AlertSignalPresence.ACK
    return pm_types.AlertSignalPresence.OFF


class PublisherWorker(Worker):
    """Keeps a station's MDIB equal to its state (see the module description)."""

    def __init__(self, session: Session, mdib: ProviderMdib, waveforms: Any, layout: md.Layout,
                 factor: int, settings: PublishSettings) -> None:
        super().__init__(WORKER_NAME, stall_s=2.0, idle_s=POLL_S)
        self.session = session
        self.mdib = mdib
        self.layout = layout
        self.settings = settings
        self.fs = session.info.sample_rate_hz
        self.factor = factor
        self.batch = max(1, round(settings.batch_s / layout.sample_period_s))
        self._waveforms = waveforms
        self._tile_index = layout.tile_index()
        self._screw_index = {k: i for i, k in enumerate(layout.screws)}
        self._channel_tile = [self._tile_index[c.tile_key] for c in session.montage.channels]
        self._lines: collections.deque[str] = collections.deque(maxlen=md.EVENT_LINES_KEPT)
        self._seq = 0
        self._fresh()

    def _fresh(self) -> None:
        """Start from now: a new ring cursor and decimator; everything published again."""
        self._reader = self.session.clean.reader()
        self._decimator = PeakDecimator(self.factor, self.session.info.n_channels)
        self._pending = np.empty((0, self.session.info.n_channels), np.float32)
        self._pending_t = np.empty(0)
        self._next_out: int | None = None
        self._wave_version = 0
        self._events_cursor = len(self.session.events)
        self._rates: list[collections.deque[int]] = [collections.deque() for _ in self.layout.tiles]
        self._triggered: dict[str, Any] = {}
        self._sent: dict[str, Any] = {}
        self._alerts_sent: tuple | None = None
        self._conditions: list[str | None] = [self._present_condition(i)
                                              for i in range(len(self.layout.tiles))]
        self._next_heartbeat = 0.0
        self.lost_samples = 0

    def on_restart(self) -> None:
        self._fresh()

    def step(self) -> int:
        """One pass: alerts, metrics, waveforms; returns what was committed."""
        now = time.time()
        state = self.session.state()
        self._read_events(state)
        return self._alerts(state, now) + self._metrics(state, now) + self._waves(now)

    # --- alerts ---

    def _present_condition(self, i: int) -> str | None:
        """The tile condition present in the MDIB now (after a restart: the truth)."""
        for kind in md.TILE_CONDITIONS:
            state = self.mdib.entities.by_handle(md.condition_handle(i, kind)).state
            if state.Presence:
                return kind
        return None

    def _alerts(self, state: StationState, now: float) -> int:
        clinical = {t.key: t for t in state.processing.tiles}
        wanted = []
        for tile in self.layout.tiles:
            t = clinical.get(tile.key)
            kind = None
            if t is not None and t.state == "alarm":
                kind = md.ALARM_CONDITION.get(t.priority or "")
            elif t is not None and t.state == "activity":
                kind = "activity"
            wanted.append((kind, bool(t is not None and t.latched)))
        technical = frozenset(a.kind for a in state.technical if a.priority)
        view = (tuple(wanted), technical, state.processing.silenced)
        if view == self._alerts_sent:
            return 0
        updates: dict[str, dict[str, Any]] = collections.defaultdict(dict)
        sent = self._alerts_sent
        for i, (kind, latched) in enumerate(wanted):
            old = self._conditions[i]
            if sent is not None and (kind, latched) == sent[0][i] and old == kind:
                continue
            for k in {old, kind} - {None}:
                updates[md.condition_handle(i, k)].update(Presence=k == kind, DeterminationTime=now)
                if k in md.SIGNALLED:
                    presence = _presence(k, kind)
                    if k == kind and latched:
                        presence = pm_types.AlertSignalPresence.LATCH
                    updates[md.signal_handle(i, k)]["Presence"] = presence
            self._conditions[i] = kind
        was = sent[1] if sent is not None else frozenset()
        for k in HEADLINES:
            if sent is None or (k in technical) != (k in was):
                on = k in technical
                updates[md.tech_condition_handle(k)].update(Presence=on, DeterminationTime=now)
                updates[md.tech_signal_handle(k)]["Presence"] = (
                    pm_types.AlertSignalPresence.ON if on else pm_types.AlertSignalPresence.OFF)
        silenced = state.processing.silenced
        if sent is None or sent[2] != silenced:
            activation = pm_types.AlertActivation.PAUSED if silenced else pm_types.AlertActivation.ON
            for i in range(len(self.layout.tiles)):
                for k in md.SIGNALLED:
                    updates[md.signal_handle(i, k)]["ActivationState"] = activation
            for k in HEADLINES:
                updates[md.tech_signal_handle(k)]["ActivationState"] = activation
            updates[md.ALERT_SYSTEM]["SystemSignalActivation"] = [pm_types.SystemSignalActivation(
                manifestation=pm_types.AlertSignalManifestation.AUD, state=activation)]
        updates[md.ALERT_SYSTEM].update(
            PresentPhysiologicalAlarmConditions=[
                md.condition_handle(i, k) for i, k in enumerate(self._conditions) if k],
            PresentTechnicalAlarmConditions=[md.tech_condition_handle(k) for k in technical])
        with self.mdib.alert_state_transaction(set_determination_time=False) as tr:
            for handle, attributes in updates.items():
                st = tr.get_state(handle)
                for name, value in attributes.items():
                    setattr(st, name, value)
        self._alerts_sent = view
        return 1

    # --- metrics ---

    def _read_events(self, state: StationState) -> None:
        new, self._events_cursor = self.session.events.since(self._events_cursor)
        labels = self.session.info.labels
        for e in new:
            if e.kind == "emg_event" and e.data.get("above_threshold") and e.channels:
                self._rates[self._channel_tile[e.channels[0]]].append(e.start)
            elif e.kind == "tof":
                self._triggered[md.TOF_COUNT] = float(e.data["count"])
                self._triggered[md.TOF_RATIO] = e.data.get("ratio")
                self._triggered[md.TOF_SITE] = str(e.data.get("site", ""))
            elif e.kind == "screw_result":
                i = self._screw_index.get(f"{e.data['level']}-{e.data['side']}")
                if i is not None:
                    self._triggered[md.screw_handle(i, "threshold")] = e.data.get("threshold_ma")
                    note = e.data.get("note")
                    self._triggered[md.screw_handle(i, "band")] = (
                        e.data["band"] + (f"; {note}" if note else ""))
            if e.kind in md.PUBLISHED_EVENTS:
                self._seq += 1
                self._lines.append(f"{self._seq} {e.start / self.fs:.3f} "
                                   f"{annotation_text(e, labels)}")
        horizon = state.processing.index - int(RATE_WINDOW_S * self.fs)
        for starts in self._rates:
            while starts and starts[0] < horizon:
                starts.popleft()

    def _metrics(self, state: StationState, now: float) -> int:
        p = state.processing
        values: dict[str, Any] = dict(self._triggered)
        shown = {t.key: t for t in state.tiles}
        minutes = RATE_WINDOW_S / 60.0
        for i, tile in enumerate(self.layout.tiles):
            t = shown.get(tile.key)
            if t is None:
                continue
            values[md.tile_handle(i, "state")] = t.state
            values[md.tile_handle(i, "reason")] = " · ".join(x for x in (t.reason, t.technical) if x)
            values[md.tile_handle(i, "train_time")] = round(p.train_time_by_tile.get(tile.key, 0.0), 3)
            values[md.tile_handle(i, "event_rate")] = float(round(len(self._rates[i]) / minutes))
        values[md.AUDIBLE] = state.audible or "none"
        values[md.TECHNICAL] = " · ".join(f"{a.headline}: {a.reason}" for a in state.technical)
        values[md.PROCEDURE] = self.settings.procedure
        values[md.EVENT_LINES] = "\n".join(self._lines)
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + HEARTBEAT_S
            values[md.CASE_TIME] = round(state.status.elapsed_s, 1)
            values[md.HEARTBEAT] = round(now, 3)
        changed = {h: v for h, v in values.items() if self._sent.get(h, ...) != v}
        if not changed:
            return 0
        with self.mdib.metric_state_transaction(set_determination_time=False) as tr:
            for handle, value in changed.items():
                st = tr.get_state(handle)
                if st.MetricValue is None:
                    st.mk_metric_value()
                st.MetricValue.Value = Decimal(repr(value)) if isinstance(value, float) else value
                st.MetricValue.DeterminationTime = now
                st.MetricValue.MetricQuality.Validity = (
                    pm_types.MeasurementValidity.VALID if value is not None
                    else pm_types.MeasurementValidity.NA)
        self._sent.update(changed)
        return 1

    # --- waveforms ---

    def _waves(self, now: float) -> int:
        r = self._reader.read()
        if r.lost:
            self.lost_samples += r.lost
            log.warning("SDC publisher fell %d samples behind the clean ring (skipped)", r.lost)
        if r.n_samples == 0:
            return 0
        first, out = self._decimator.push(r.start, r.data)
        if len(out):
            if self._next_out is not None and first != self._next_out:
                self._send(len(self._pending))  # samples were skipped: close the batch
            self._pending = np.concatenate((self._pending, out))
            self._pending_t = np.concatenate((self._pending_t, np.full(len(out), now)))
            self._next_out = first + len(out)
        sent = 0
        while len(self._pending) >= self.batch:
            self._send(self.batch)
            sent += 1
        return sent + 1

    def _send(self, n: int) -> None:
        """Publish the first ``n`` pending samples of every channel as one report."""
        if n == 0:
            return
        batch = self._pending[:n]
        # the first sample's time, so that no sample is dated after it reached the clean ring
        t0 = float(np.min(self._pending_t[:n] - np.arange(n) * self.layout.sample_period_s))
        self._pending, self._pending_t = self._pending[n:], self._pending_t[n:]
        self._wave_version += 1
        with self.mdib.mdib_lock:
            self.mdib.mdib_version += 1
            group = self.mdib.mdib_version_group
        self._waveforms.send_to_subscribers(
            waveform_stream(batch, t0, self._wave_version, group.mdib_version,
                            group.sequence_id, group.instance_id),
            Actions.Waveform, group)


def waveform_stream(batch: np.ndarray, start_s: float, version: int, mdib_version: int,
                    sequence_id: str, instance_id: int | None) -> etree._Element:
    """A WaveformStream report: one real-time sample array state per channel (``wave.i``),
    ``batch`` (samples × channels, µV; NaN written 0 and the array marked questionable, or
    invalid when all NaN), its first sample at station time ``start_s``.

    Written directly with lxml (the library's per-sample objects cost ten times more): the
    stream is the hot path. The MDIB's own sample array states are not updated; their
    ``StateVersion`` here numbers the reports, so a supervisor counts any it missed."""
    root = etree.Element(f"{_MSG}WaveformStream", nsmap=_NSMAP)
    root.set("MdibVersion", str(mdib_version))
    root.set("SequenceId", sequence_id)
    if instance_id is not None:
        root.set("InstanceId", str(instance_id))
    stamp = str(round(start_s * 1000))
    missing = np.isnan(batch)
    values = np.where(missing, 0.0, batch)
    for c in range(batch.shape[1]):
        st = etree.SubElement(root, f"{_MSG}State", {
            _XSI_TYPE: "pm:RealTimeSampleArrayMetricState", "DescriptorHandle": md.wave_handle(c),
            "StateVersion": str(version), "ActivationState": "On"})
        column = values[:, c]
        mv = etree.SubElement(st, f"{_PM}MetricValue", {
            "DeterminationTime": stamp, "Samples": ("%.1f " * len(column) % tuple(column.tolist()))[:-1]})
        validity = "Inv" if missing[:, c].all() else "Qst" if missing[:, c].any() else "Vld"
        etree.SubElement(mv, f"{_PM}MetricQuality", {"Validity": validity})
    return root
