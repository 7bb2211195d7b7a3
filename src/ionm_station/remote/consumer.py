"""The supervisor's link to one station: connect, subscribe, read, and start again when lost.

:class:`StationLink` is a supervised worker per room. Connecting is an ``sdc11073`` consumer:
TLS only when certificates are given (never a fallback to plain HTTP), the station's
certificate checked against the CA, then a subscription to every episodic report, another
to the waveform stream (the station queues reports per subscription, so an alarm never waits
behind traces), and one GetMdib read into a :class:`~.wall.Snapshot` (the layout comes from
the descriptors' concept descriptions, :mod:`.mdib`). Reports that arrive while the snapshot is
read are held and applied after it, in arrival order, when they are newer (:class:`HoldBack`).
From then on each report becomes plain values on the :class:`~.wall.Room` on the consumer's
own server threads; waveform reports are read straight from their XML (``Samples`` into
numpy), not through the library's per-sample objects, so a wall of rooms costs little.

The worker watches the room: silent for :data:`~.wall.LOST_S` (or told SubscriptionEnd), the
link is torn down and the room shows CONNECTION LOST; it then tries again every
:data:`RETRY_S` (a refused certificate or an unreachable address is shown as the reason) and
resubscribes by itself as soon as the station answers. The link never asks the station to do
anything: it reads.
"""

from __future__ import annotations

import collections
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from sdc11073 import observableproperties
from sdc11073.certloader import SSLContextContainer
from sdc11073.consumer.consumerimpl import SdcConsumer
from sdc11073.definitions_sdc import SdcV1Definitions
from sdc11073.xml_types import eventing_types
from sdc11073.xml_types.actions import Actions, periodic_actions
from sdc11073.xml_types.dpws_types import DeviceEventingFilterDialectURI

from ionm_station.io.annotations import parse_annotation
from ionm_station.pipeline.worker import Worker
from ionm_station.remote import mdib as md
from ionm_station.remote.transport import SdcServer
from ionm_station.remote.wall import Room, Snapshot

#: Pause between connection attempts to a lost or refusing station (s).
RETRY_S = 0.25
#: Socket timeout of the link's requests (connect, GetMdib, renew) (s).
REQUEST_TIMEOUT_S = 2

_MSG, _PM = f"{{{md.MSG_NS}}}", f"{{{md.PM_NS}}}"

log = logging.getLogger("ionm_station")


def _local_address(url: str) -> str:
    """This machine's address on the way to ``url``'s host (where notifications can reach it;
    a UDP "connect" sends nothing)."""
    parts = urlsplit(url)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((parts.hostname or "127.0.0.1", parts.port or 80))
        return str(s.getsockname()[0])


def why(exc: BaseException) -> str:
    """A connection failure in a few words for the room (certificate refusals named)."""
    text = f"{type(exc).__name__}: {exc}"
    for cause in (exc, exc.__cause__, exc.__context__):
        if isinstance(cause, ssl.SSLError):
            return f"TLS refused: {cause.reason or cause}"
    if "CERTIFICATE" in text.upper() or "SSL" in text.upper():
        return f"TLS refused: {exc}"
    if isinstance(exc, ConnectionRefusedError) or "Connection refused" in text:
        return "connection refused (station not serving)"
    if isinstance(exc, (TimeoutError, OSError)):
        return f"unreachable ({exc})"
    return text


def _text(value: Any) -> str:
    try:
        return str(value[0].text)
    except (IndexError, TypeError, AttributeError):
        return ""


def layout_of(descriptors: list[Any]) -> md.Layout:
    """The layout described by a station's descriptors (see :mod:`.mdib`)."""
    by_handle = {d.Handle: d for d in descriptors}
    about = {h: parse_annotation(_text(getattr(d.Type, "ConceptDescription", None)), 0, None, ())
             for h, d in by_handle.items() if d.Type is not None}

    def indexed(prefix: str, suffix: str) -> list[Any]:
        found, i = [], 0
        while f"{prefix}.{i}{suffix}" in about:
            found.append(about[f"{prefix}.{i}{suffix}"].data)
            i += 1
        return found

    tiles = tuple(md.TileInfo(str(d.get("key", "")), str(d.get("root", "")), str(d.get("side", "")))
                  for d in indexed("tile", ".state"))
    labels = tuple(str(d.get("label", "")) for d in indexed("wave", ""))
    screws = tuple(str(d.get("key", "")) for d in indexed("screw", ".threshold"))
    wave = by_handle.get(md.wave_handle(0))
    period = float(wave.SamplePeriod) if wave is not None else 1.0
    return md.Layout(tiles, labels, screws, period)


def _value(state: Any) -> Any:
    mv = getattr(state, "MetricValue", None)
    if mv is None:
        return None
    v = mv.Value
    return float(v) if v is not None and not isinstance(v, str) else v


def _alert_values(states: list[Any]) -> tuple[dict, dict, bool | None]:
    conditions: dict[str, tuple[bool, float | None]] = {}
    signals: dict[str, str] = {}
    silenced = None
    for st in states:
        h = st.DescriptorHandle
        if h == md.ALERT_SYSTEM:
            silenced = any(str(s.State) == "Psd" for s in st.SystemSignalActivation or [])
        elif h.startswith("ac."):
            conditions[h] = (bool(st.Presence), st.DeterminationTime)
        elif h.startswith("as."):
            signals[h] = str(st.Presence)
    return conditions, signals, silenced


def snapshot_of(descriptors: list[Any], states: list[Any]) -> Snapshot:
    """A room's :class:`~.wall.Snapshot` from a GetMdib response."""
    values, location, patient = {}, "", ""
    for st in states:
        h = getattr(st, "DescriptorHandle", "")
        if h == md.LOCATION and getattr(st, "LocationDetail", None) is not None:
            location = st.LocationDetail.Room or location
        elif h == md.PATIENT and st.Identification:
            patient = st.Identification[0].Extension or ""
        elif hasattr(st, "MetricValue") and not h.startswith("wave."):
            values[h] = _value(st)
    conditions, signals, silenced = _alert_values(states)
    return Snapshot(layout_of(descriptors), location, patient, values,
                    {h: p for h, (p, _) in conditions.items()}, signals, bool(silenced))


def read_waveform(node: Any, n_channels: int) -> tuple[int, float, np.ndarray] | None:
    """A WaveformStream report's state version, first sample's station time (s) and samples
    (n × channels, NaN where the station marked them invalid); None if it has no samples."""
    version, start, columns = None, None, {}
    for st in node.iterfind(f"{_MSG}State"):
        handle = st.get("DescriptorHandle", "")
        mv = st.find(f"{_PM}MetricValue")
        if not handle.startswith("wave.") or mv is None:
            continue
        quality = mv.find(f"{_PM}MetricQuality")
        data = np.array(mv.get("Samples", "").split(), dtype=np.float32)
        if quality is not None and quality.get("Validity") == "Inv":
            data[:] = np.nan
        columns[int(handle.split(".")[1])] = data
        version = int(st.get("StateVersion", "0"))
        start = int(mv.get("DeterminationTime", "0")) / 1000.0
    if not columns or version is None or start is None:
        return None
    n = min(len(c) for c in columns.values())
    block = np.full((n, n_channels), np.nan, np.float32)
    for i, data in columns.items():
        if i < n_channels:
            block[:, i] = data[:n]
    return version, start, block


class HoldBack:
    """Reports held while a snapshot is read, then applied in the order they arrived.

    From :meth:`hold` on, :meth:`offer` keeps what it is given; :meth:`release` applies it
    outside the lock, and what arrives meanwhile joins the end of the queue, so no report
    overtakes an earlier one. (A trace report applied straight from the server thread while
    held ones were still being applied made the two before it read as already seen: the
    supervisor counted them lost.) Once the queue is empty, reports are applied where they
    arrive again.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: collections.deque[tuple[str, Any]] | None = None

    def hold(self) -> None:
        """Keep what is offered from now on."""
        with self._lock:
            self._held = collections.deque()

    def offer(self, name: str, message: Any) -> bool:
        """Keep a report while holding (True); False: apply it now."""
        with self._lock:
            if self._held is None:
                return False
            self._held.append((name, message))
            return True

    def release(self, apply: Callable[[str, Any], None]) -> None:
        """Apply every held report in order, including those offered meanwhile, then stop
        holding."""
        while True:
            with self._lock:
                if not self._held:
                    self._held = None
                    return
                name, message = self._held.popleft()
            apply(name, message)


class StationLink(Worker):
    """Follows one station for its :class:`~.wall.Room` (see the module description).

    Args:
        room: where what is read goes (its ``url`` is where the station is).
        tls: client and server contexts (the link's own notification server is TLS too), or
            None for plain HTTP (``--insecure``).
    """

    def __init__(self, room: Room, tls: SSLContextContainer | None) -> None:
        super().__init__(f"link {room.key[-8:]}", stall_s=4 * REQUEST_TIMEOUT_S, idle_s=0.05)
        self.room = room
        self.tls = tls
        self._consumer: SdcConsumer | None = None
        self._server: SdcServer | None = None
        self._ended = False
        self._held = HoldBack()
        self._mdib_version = 0
        self._retry_at = 0.0

    def step(self) -> int:
        """Connect when due; tear down a link that has gone silent."""
        now = time.monotonic()
        if self._consumer is None:
            if now < self._retry_at:
                return 0
            try:
                self._connect()
            except Exception as exc:  # any failure: say why on the room, try again soon
                self._teardown()
                self.room.set_connection("refused" if "TLS" in why(exc) else "connecting", why(exc))
                self._retry_at = time.monotonic() + RETRY_S
                return 0
            return 1
        if self._ended or self.room.lost():
            self.room.set_connection("lost", "station ended the subscription" if self._ended
                                     else "nothing heard from the station")
            self._teardown()
            self._retry_at = now + RETRY_S
        return 0

    def on_restart(self) -> None:
        self._teardown()

    def on_exit(self) -> None:
        self._teardown()

    # --- connecting ---

    def _connect(self) -> None:
        self._ended = False
        consumer = SdcConsumer(self.room.url, SdcV1Definitions, self.tls, validate=False,
                               socket_timeout=REQUEST_TIMEOUT_S,
                               force_ssl_connect=self.tls is not None)
        self._consumer = consumer
        self._held.hold()
        for name in ("waveform_report", "episodic_metric_report", "episodic_alert_report",
                     "subscription_end_data"):
            observableproperties.strongbind(consumer, **{name: self._receiver(name)})
        context = self.tls.server_context if self.tls is not None else None
        self._server = SdcServer(_local_address(self.room.url), 0, context, ["gzip"])
        self._server.start()
        consumer.start_all(not_subscribed_actions=[*periodic_actions, Actions.Waveform],
                           shared_http_server=self._server)
        # the traces on a subscription of their own: alarms never queue behind them
        waves = consumer.waveform_service_client
        stream = eventing_types.FilterType()
        stream.text, stream.Dialect = Actions.Waveform, DeviceEventingFilterDialectURI.ACTION
        consumer.do_subscribe(waves.dpws_hosted, stream,
                              [k for k in waves.get_available_subscriptions()
                               if k.action == Actions.Waveform])
        response = consumer.client("Get").get_mdib()
        descriptors, states = response.result
        self.room.reset(snapshot_of(descriptors, states))
        self._mdib_version = response.mdib_version_group.mdib_version  # (before any report)
        self._held.release(self._apply)

    def _teardown(self) -> None:
        consumer, self._consumer = self._consumer, None
        server, self._server = self._server, None
        if consumer is not None:
            try:
                consumer.stop_all(unsubscribe=False)
            except Exception as exc:  # a half-made consumer: nothing more to stop
                log.info("SDC link to %s: stop: %s", self.room.url, exc)
        if server is not None:
            server.stop()

    # --- reports (the consumer's server threads) ---

    def _receiver(self, name: str):
        def receive(message: Any) -> None:
            if not self._held.offer(name, message):
                self._apply(name, message)
        return receive

    def _apply(self, name: str, message: Any) -> None:
        received = time.time()
        if name == "subscription_end_data":
            self._ended = True
            return
        version = message.mdib_version_group.mdib_version
        if version is not None and version <= self._mdib_version:
            return  # already in the snapshot
        node = message.p_msg.msg_node
        model = SdcV1Definitions.data_model
        if name == "waveform_report":
            layout = self.room.layout
            found = read_waveform(node, len(layout.labels) if layout else 0)
            if found is not None:
                self.room.on_waves(*found, received)
        elif name == "episodic_metric_report":
            report = model.msg_types.EpisodicMetricReport.from_node(node)
            self.room.on_metrics({st.DescriptorHandle: _value(st) for part in report.ReportPart
                                  for st in part.values_list})
        elif name == "episodic_alert_report":
            report = model.msg_types.EpisodicAlertReport.from_node(node)
            states = [st for part in report.ReportPart for st in part.values_list]
            self.room.on_alerts(*_alert_values(states), received)
