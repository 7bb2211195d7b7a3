"""The EDF+ annotation texts of IONM Station: every event as a readable line that reads back.

Grammar (``docs/recording-format.md``, "EDF+ annotations")::

    text    = kind 1*( "; " field )
    kind    = the event kind, [a-z][a-z0-9_]*           e.g. alarm, emg_event, artifact
    field   = key "=" value                             key: [a-z][a-z0-9_]*
    value   = JSON                                      a number, true/false, a "quoted string",
                                                        a [list] or an {object}
            / text                                      anything else: the string as it is

``channels`` (first, when the event has channels) lists the EDF signal labels of its channels
joined by ``", "`` — or ``all`` for every channel — and every key of the event's data follows
in the data's order (a key whose value is None is left out: absent means None). A string is
written as it is unless it would read back as something else (it looks like JSON, is empty, has
spaces at its ends or a control character), then JSON-quoted; a ``;`` inside a value is written
``\\u003b`` (JSON), so ``; `` always separates fields. Examples::

    alarm; tile=L5-L; state=alarm; priority=high; reason=A-train 3.2 s
    artifact; channels=all; kind=cautery
    emg_event; channels=L5-L TibAnt; kind=train; train_type=A; peak_uv=412.3; rate_hz=96.0
    technical_alarm; condition=signal_lost; what=raised; priority=high; reason=no data for 0.6 s
    marker; text=screw L5 left

A text that does not follow the grammar (another system's annotation, or ours without a
field) reads back as an ``annotation`` event with ``data = {"text": text}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from ionm_station.events import Event

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
#: The value of ``channels`` that means every channel of the file.
ALL_CHANNELS = "all"


def _json(value: Any) -> str:
    """``value`` as JSON on one line, a ``;`` inside written ``\\u003b``."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": ")).replace(";", "\\u003b")


def _reads_as_json(text: str) -> bool:
    """True if ``text`` parses as JSON (so a plain string like it must be quoted)."""
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _value(value: Any) -> str:
    """One value as annotation text (see the module grammar)."""
    if isinstance(value, str):
        plain = (value and value == value.strip() and value.isprintable() and ";" not in value
                 and not value.startswith(('"', "[", "{")) and not _reads_as_json(value))
        return value if plain else _json(value)
    return _json(value)


def _channels(channels: Sequence[int], labels: Sequence[str]) -> str:
    """The ``channels`` value: ``all``, labels joined by ``", "``, or a JSON list of labels."""
    if len(labels) > 1 and sorted(channels) == list(range(len(labels))):
        return ALL_CHANNELS
    names = [labels[c] if 0 <= c < len(labels) else str(c) for c in channels]
    if all(n and n == n.strip() and n.isprintable() and not {",", ";"} & set(n)
           and n != ALL_CHANNELS and not n.startswith(("[", '"')) for n in names):
        return ", ".join(names)
    return _json(names)


def annotation_text(event: Event, labels: Sequence[str]) -> str:
    """``event`` as one EDF+ annotation text; ``labels`` are the EDF signal labels of the
    channels (as the EDF header holds them, so the text reads back)."""
    fields = [event.kind]
    if event.channels:
        fields.append(f"channels={_channels(event.channels, labels)}")
    fields += [f"{key}={_value(value)}" for key, value in event.data.items() if value is not None]
    return "; ".join(fields)


def _read_value(text: str) -> Any:
    """A field value read back: JSON where it parses as JSON, else the text itself."""
    if text.startswith(('"', "[", "{")) or _reads_as_json(text):
        return json.loads(text)
    return text


def _read_channels(text: str, labels: Sequence[str]) -> tuple[int, ...] | None:
    """The channel indices ``text`` names, None if a label is not one of ``labels``."""
    if text == ALL_CHANNELS:
        return tuple(range(len(labels)))
    names = json.loads(text) if text.startswith("[") else text.split(", ")
    index = {label: i for i, label in reversed(list(enumerate(labels)))}
    found = [index.get(str(name)) for name in names]
    return None if None in found else tuple(i for i in found if i is not None)


def parse_annotation(text: str, start: int, stop: int | None,
                     labels: Sequence[str]) -> Event:
    """The event an annotation ``text`` stands for, at sample ``start`` (``stop``: None for an
    instant); a text outside the grammar is an ``annotation`` event holding it."""
    plain = Event("annotation", start, stop, data={"text": text})
    kind, *parts = text.split(";")
    if not parts or not _NAME.match(kind):
        return plain
    channels: tuple[int, ...] = ()
    data: dict[str, Any] = {}
    for part in parts:
        key, eq, value = part.removeprefix(" ").partition("=")
        if not eq or not _NAME.match(key):
            return plain
        try:
            if key == "channels" and not channels:
                found = _read_channels(value, labels)
                if found is None:
                    return plain
                channels = found
            else:
                data[key] = _read_value(value)
        except ValueError:  # a "quoted" or [bracketed] value that is not JSON after all
            return plain
    return Event(kind, start, stop, channels, data)
