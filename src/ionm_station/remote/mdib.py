"""The MDIB a station publishes: its description (XML) and the handles both sides agree on.

One medical device system (MDS) per station, informational only (``SafetyClassification="Inf"``,
no SCO: nothing can be set or started from outside):

* an alert system holding, per alarm tile (root-side), the conditions ``activity`` (Lo),
  ``atrain`` (an A-train alarm, Lo), ``caution`` (Me) and ``critical`` (Hi) — at most one present
  at a time, following the tile's priority — with a latching auditory signal for each of the
  three alarms; and one technical condition (``Kind="Tec"``) per technical alarm kind
  (:data:`~ionm_station.pipeline.technical.HEADLINES`) with its signal;
* the patient and location contexts;
* one VMD with four channels: ``tiles`` (per tile: shown state, reason, train time, above-
  threshold event rate), ``waves`` (one real-time sample array per EMG channel, clean signal,
  µV), ``triggered`` (train-of-four count, ratio and site; per root-side the screw threshold
  and band) and ``case`` (case time, the station's clock as a heartbeat, what sounds now, the
  technical summary, the procedure and the recent event lines).

Handles are built from indices (``tile.3.state``), never from labels, so any montage makes a
valid MDIB; what an index stands for is in the descriptor's concept description, written in
the annotation grammar of :mod:`ionm_station.io.annotations` (``tile; key=L5-L; root=L5;
side=L``) and read back by the supervisor with the same module. Type codes use a private coding
system (:data:`CODING_SYSTEM`): IONM terms have no IEEE 11073-10101 code. Units are 10101 codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from ionm_station.events import Event
from ionm_station.io.annotations import annotation_text
from ionm_station.montage import Montage
from ionm_station.pipeline.technical import HEADLINES, PRIORITY

#: The BICEPS message and participant model namespaces, and XML Schema instance's.
MSG_NS = "http://standards.ieee.org/downloads/11073/11073-10207-2017/message"
PM_NS = "http://standards.ieee.org/downloads/11073/11073-10207-2017/participant"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
#: Coding system of the Type codes (private: IONM terms are not in IEEE 11073-10101).
CODING_SYSTEM = "urn:ionm-station:sdc:codes"
#: IEEE 11073-10101 unit codes (partition 4, dimensions).
UNIT_DIMLESS, UNIT_MICRO_VOLT, UNIT_SEC, UNIT_MILLI_AMP = "262656", "266419", "264320", "266322"

#: The alert conditions of one tile, in rising priority.
TILE_CONDITIONS = ("activity", "atrain", "caution", "critical")
#: The tile condition of each alarm priority of the alarm engine.
ALARM_CONDITION = {"advisory": "atrain", "caution": "caution", "warning": "critical"}
#: BICEPS priority (Lo, Me, Hi) of each tile condition.
CONDITION_PRIORITY = {"activity": "Lo", "atrain": "Lo", "caution": "Me", "critical": "Hi"}
#: Alarm-engine priority ↔ BICEPS priority.
BICEPS_PRIORITY = {"advisory": "Lo", "caution": "Me", "warning": "Hi"}
STATION_PRIORITY = {v: k for k, v in BICEPS_PRIORITY.items()}
#: Tile conditions that have an auditory, latching signal (the alarms).
SIGNALLED = ("atrain", "caution", "critical")
#: The states a tile can show (alarm engine's and technical).
TILE_STATES = ("quiet", "activity", "alarm", "blanked", "no_signal", "not_monitoring",
               "signal_lost")
#: Values of the ``case.audible`` metric.
AUDIBLE_VALUES = ("none", "advisory", "caution", "warning")

MDS, ALERT_SYSTEM, VMD = "mds0", "asy.mds0", "vmd.emg"
PATIENT, LOCATION = "ctx.patient", "ctx.location"
CASE_TIME, HEARTBEAT, AUDIBLE, TECHNICAL, PROCEDURE, EVENT_LINES = (
    "case.time", "case.heartbeat", "case.audible", "case.technical", "case.procedure",
    "case.events")
TOF_COUNT, TOF_RATIO, TOF_SITE = "tof.count", "tof.ratio", "tof.site"
#: Event kinds published as event lines (what a supervising reader follows).
PUBLISHED_EVENTS = ("alarm", "alarm_ack", "alarm_silence", "alarm_threshold", "technical_alarm",
                    "worker_fault", "worker_failed", "source_error", "source_recovered",
                    "recording_error", "not_monitored", "marker", "screw_result", "tof",
                    "settings")
#: Event lines the ``case.events`` metric holds (the newest).
EVENT_LINES_KEPT = 50


def tile_handle(i: int, what: str) -> str:
    """Metric of tile ``i``: ``state``, ``reason``, ``train_time`` or ``event_rate``."""
    return f"tile.{i}.{what}"


def condition_handle(i: int, kind: str) -> str:
    """Alert condition ``kind`` (:data:`TILE_CONDITIONS`) of tile ``i``."""
    return f"ac.tile.{i}.{kind}"


def signal_handle(i: int, kind: str) -> str:
    """Auditory signal of alarm condition ``kind`` (:data:`SIGNALLED`) of tile ``i``."""
    return f"as.tile.{i}.{kind}"


def tech_condition_handle(kind: str) -> str:
    """Technical alert condition of a technical alarm ``kind``."""
    return f"ac.tech.{kind}"


def tech_signal_handle(kind: str) -> str:
    """Auditory signal of a technical alarm ``kind``."""
    return f"as.tech.{kind}"


def wave_handle(i: int) -> str:
    """Real-time sample array of EMG channel ``i``."""
    return f"wave.{i}"


def screw_handle(i: int, what: str) -> str:
    """Screw metric of root-side ``i``: ``threshold`` (mA) or ``band``."""
    return f"screw.{i}.{what}"


@dataclass(frozen=True)
class TileInfo:
    """One alarm tile as both sides know it: key (``L5-L``), root and side (may be empty)."""

    key: str
    root: str
    side: str


@dataclass(frozen=True)
class Layout:
    """What a station's MDIB holds, by index: tiles, EMG channel labels, screw root-sides,
    and the published sample period (s)."""

    tiles: tuple[TileInfo, ...]
    labels: tuple[str, ...]
    screws: tuple[str, ...]
    sample_period_s: float

    @classmethod
    def of(cls, montage: Montage, sample_period_s: float) -> Layout:
        """The layout of a station running ``montage``, publishing at ``sample_period_s``."""
        first = {}
        for c in montage.channels:
            first.setdefault(c.tile_key, c)
        tiles = tuple(TileInfo(k, c.root, c.side if c.root else "") for k, c in first.items())
        return cls(tiles, montage.labels, tuple(montage.root_sides()), sample_period_s)

    def tile_index(self) -> dict[str, int]:
        """Tile key → index."""
        return {t.key: i for i, t in enumerate(self.tiles)}


def describe(what: str, **fields: str) -> str:
    """A concept description in the annotation grammar (``tile; key=L5-L; root=L5``)."""
    return annotation_text(Event(what, 0, data=fields), ())


def _coded(tag: str, code: str, text: str, private: bool = True) -> str:
    system = f" CodingSystem={quoteattr(CODING_SYSTEM)}" if private else ""
    return (f'<pm:{tag} Code="{code}"{system}><pm:ConceptDescription Lang="en">{escape(text)}'
            f"</pm:ConceptDescription></pm:{tag}>")


class _Codes:
    """Private Type codes, numbered in the order terms are first used."""

    def __init__(self) -> None:
        self._codes: dict[str, str] = {}

    def type(self, term: str, text: str) -> str:
        code = self._codes.setdefault(term, str(1000 + len(self._codes)))
        return _coded("Type", code, text)


def _metric(kind: str, handle: str, type_xml: str, unit: str, unit_text: str,
            extra: str = "", body: str = "", category: str = "Msrmt",
            availability: str = "Cont") -> str:
    return (f'<pm:Metric xsi:type="pm:{kind}" Handle="{handle}" MetricCategory="{category}" '
            f'MetricAvailability="{availability}"{extra}>{type_xml}'
            f'{_coded("Unit", unit, unit_text, private=False)}{body}</pm:Metric>')


def _enum_values(values: tuple[str, ...]) -> str:
    return "".join(f"<pm:AllowedValue><pm:Value>{v}</pm:Value></pm:AllowedValue>" for v in values)


def _condition(handle: str, kind: str, priority: str, type_xml: str, source: str = "") -> str:
    src = f"<pm:Source>{source}</pm:Source>" if source else ""
    return (f'<pm:AlertCondition xsi:type="pm:AlertConditionDescriptor" Handle="{handle}" '
            f'Kind="{kind}" Priority="{priority}">{type_xml}{src}</pm:AlertCondition>')


def _signal(handle: str, condition: str) -> str:
    return (f'<pm:AlertSignal Handle="{handle}" ConditionSignaled="{condition}" '
            f'Manifestation="Aud" Latching="true"/>')


def mdib_xml(layout: Layout) -> bytes:
    """The MDIB description of a station with ``layout`` (a GetMdibResponse document, as
    ``sdc11073.mdib.ProviderMdib.from_string`` reads it; states are made by the provider)."""
    codes = _Codes()
    conditions, signals = [], []
    tile_metrics, waves, triggered = [], [], []
    for i, tile in enumerate(layout.tiles):
        for kind in TILE_CONDITIONS:
            conditions.append(_condition(
                condition_handle(i, kind), "Phy", CONDITION_PRIORITY[kind],
                codes.type(f"condition.{kind}", describe(kind, tile=tile.key)),
                tile_handle(i, "state")))
            if kind in SIGNALLED:
                signals.append(_signal(signal_handle(i, kind), condition_handle(i, kind)))
        about = describe("tile", key=tile.key, root=tile.root, side=tile.side)
        tile_metrics += [
            _metric("EnumStringMetricDescriptor", tile_handle(i, "state"),
                    codes.type("tile.state", about), UNIT_DIMLESS, "state",
                    body=_enum_values(TILE_STATES), category="Clc"),
            _metric("StringMetricDescriptor", tile_handle(i, "reason"),
                    codes.type("tile.reason", describe("reason", tile=tile.key)), UNIT_DIMLESS,
                    "text", category="Clc"),
            _metric("NumericMetricDescriptor", tile_handle(i, "train_time"),
                    codes.type("tile.train_time", describe("train_time", tile=tile.key)),
                    UNIT_SEC, "s", ' Resolution="0.001"', category="Clc"),
            _metric("NumericMetricDescriptor", tile_handle(i, "event_rate"),
                    codes.type("tile.event_rate",
                               describe("event_rate", tile=tile.key, per="minute")),
                    UNIT_DIMLESS, "events per minute", ' Resolution="1"', category="Clc"),
        ]
    for kind in HEADLINES:
        conditions.append(_condition(tech_condition_handle(kind), "Tec",
                                     BICEPS_PRIORITY[PRIORITY[kind]],
                                     codes.type(f"technical.{kind}",
                                                describe("technical", kind=kind,
                                                         headline=HEADLINES[kind]))))
        signals.append(_signal(tech_signal_handle(kind), tech_condition_handle(kind)))
    period = f"PT{layout.sample_period_s:.9f}S"
    for i, label in enumerate(layout.labels):
        waves.append(_metric("RealTimeSampleArrayMetricDescriptor", wave_handle(i),
                             codes.type("wave", describe("channel", label=label)),
                             UNIT_MICRO_VOLT, "µV",
                             f' Resolution="0.1" SamplePeriod="{period}"'))
    for i, key in enumerate(layout.screws):
        triggered += [
            _metric("NumericMetricDescriptor", screw_handle(i, "threshold"),
                    codes.type("screw.threshold", describe("screw", key=key)), UNIT_MILLI_AMP,
                    "mA", ' Resolution="0.1"', category="Clc", availability="Intr"),
            _metric("StringMetricDescriptor", screw_handle(i, "band"),
                    codes.type("screw.band", describe("screw_band", key=key)), UNIT_DIMLESS,
                    "text", category="Clc", availability="Intr"),
        ]
    triggered += [
        _metric("NumericMetricDescriptor", TOF_COUNT, codes.type("tof.count", "TOF count"),
                UNIT_DIMLESS, "twitches", ' Resolution="1"', category="Clc", availability="Intr"),
        _metric("NumericMetricDescriptor", TOF_RATIO, codes.type("tof.ratio", "TOF T4/T1"),
                UNIT_DIMLESS, "ratio", ' Resolution="0.01"', category="Clc",
                availability="Intr"),
        _metric("StringMetricDescriptor", TOF_SITE, codes.type("tof.site", "TOF site"),
                UNIT_DIMLESS, "text", category="Clc", availability="Intr"),
    ]
    case = [
        _metric("NumericMetricDescriptor", CASE_TIME, codes.type("case.time", "case time"),
                UNIT_SEC, "s", ' Resolution="0.1"', category="Clc"),
        _metric("NumericMetricDescriptor", HEARTBEAT,
                codes.type("case.heartbeat", "station clock (heartbeat)"), UNIT_SEC, "s",
                ' Resolution="0.001"', category="Clc"),
        _metric("EnumStringMetricDescriptor", AUDIBLE, codes.type("case.audible", "sounding now"),
                UNIT_DIMLESS, "priority", body=_enum_values(AUDIBLE_VALUES), category="Clc"),
        _metric("StringMetricDescriptor", TECHNICAL,
                codes.type("case.technical", "technical alarms"), UNIT_DIMLESS, "text",
                category="Clc"),
        _metric("StringMetricDescriptor", PROCEDURE, codes.type("case.procedure", "procedure"),
                UNIT_DIMLESS, "text", category="Set", availability="Intr"),
        _metric("StringMetricDescriptor", EVENT_LINES,
                codes.type("case.events", "recent events (sequence, time s, annotation)"),
                UNIT_DIMLESS, "text", category="Clc", availability="Intr"),
    ]

    def channel(handle: str, text: str, metrics: list[str]) -> str:
        return (f'<pm:Channel Handle="{handle}">{codes.type(handle, text)}'
                f'{"".join(metrics)}</pm:Channel>')

    body = (
        f'<pm:Mds Handle="{MDS}" SafetyClassification="Inf">'
        f'{codes.type("mds", "IONM Station (remote view, research use only)")}'
        f'<pm:AlertSystem Handle="{ALERT_SYSTEM}" SelfCheckPeriod="PT1S">'
        f'{"".join(conditions)}{"".join(signals)}</pm:AlertSystem>'
        f'<pm:SystemContext Handle="ctx"><pm:PatientContext Handle="{PATIENT}"/>'
        f'<pm:LocationContext Handle="{LOCATION}"/></pm:SystemContext>'
        f'<pm:Vmd Handle="{VMD}">{codes.type("vmd", "free-run and triggered EMG")}'
        f'{channel("ch.tiles", "alarm tiles", tile_metrics)}'
        f'{channel("ch.waves", "clean EMG", waves)}'
        f'{channel("ch.triggered", "triggered EMG", triggered)}'
        f'{channel("ch.case", "case", case)}</pm:Vmd></pm:Mds>'
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<msg:GetMdibResponse '
        f'xmlns:msg="{MSG_NS}" xmlns:pm="{PM_NS}" xmlns:xsi="{XSI_NS}" SequenceId="urn:oid:1">'
        f'<msg:Mdib SequenceId="urn:oid:1"><pm:MdDescription>{body}</pm:MdDescription>'
        '</msg:Mdib></msg:GetMdibResponse>'
    ).encode()
