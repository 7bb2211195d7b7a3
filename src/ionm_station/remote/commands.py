"""The command line of remote oversight: ``run --publish-sdc …`` and ``ionm-station supervise``.

Parsing and checking only import what is light, so ``--help`` and a bad argument answer at once;
``sdc11073`` is imported when a station publishes or a supervisor starts. Every problem is one
line: a certificate folder that cannot be used, an address that is not this machine's, a port
taken, a station address that is not ``HOST[:PORT]``.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ionm_station.commands.args import count, positive
from ionm_station.errors import IonmError
from ionm_station.remote import DEFAULT_PORT

if TYPE_CHECKING:
    from ionm_station.remote.follow import Follower
    from ionm_station.remote.provider import Publisher
    from ionm_station.session import Session

#: Seconds between two writes of ``supervise --json``.
JSON_EVERY_S = 0.5


def port(value: str) -> int:
    """A TCP port number 1–65535."""
    try:
        n = int(value)
    except ValueError:
        n = 0
    if not 1 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port 1–65535, got {value!r}")
    return n


def _transport_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--certs", type=Path, metavar="DIR",
                        help="TLS certificate folder: ca.pem, cert.pem, key.pem "
                             "(see docs/remote.md)")
    parser.add_argument("--insecure", action="store_true",
                        help="plain HTTP, no certificates: for tests on one machine only")


def add_publish_arguments(run: argparse.ArgumentParser) -> None:
    """``run``'s options for publishing over SDC (off unless ``--publish-sdc``)."""
    run.add_argument("--publish-sdc", action="store_true",
                     help="publish this station over IEEE 11073 SDC for remote supervisors "
                          "(read-only; needs --certs DIR or --insecure)")
    run.add_argument("--sdc-address", metavar="IP",
                     help="with --publish-sdc: this machine's address to serve on "
                          "(default 127.0.0.1)")
    run.add_argument("--sdc-port", type=port, metavar="N",
                     help=f"with --publish-sdc: TCP port (default {DEFAULT_PORT})")
    run.add_argument("--room", help="with --publish-sdc: the room's name, e.g. 'OR 3'")
    run.add_argument("--discoverable", action="store_true",
                     help="with --publish-sdc: answer WS-Discovery (UDP multicast on the "
                          "--sdc-address interface)")
    _transport_arguments(run)


def check_publish_args(args: argparse.Namespace) -> None:
    """Refuse SDC options without ``--publish-sdc``, and publishing without a transport."""
    given = [o for o, v in (("--sdc-address", args.sdc_address), ("--sdc-port", args.sdc_port),
                            ("--room", args.room), ("--discoverable", args.discoverable or None),
                            ("--certs", args.certs), ("--insecure", args.insecure or None))
             if v is not None]
    if not args.publish_sdc:
        if given:
            raise IonmError(f"{given[0]} applies to --publish-sdc")
        return
    _check_transport(args)
    if args.replay is not None:
        raise IonmError("--publish-sdc does not apply to --replay (a replay is not a case "
                        "under way)")


def _check_transport(args: argparse.Namespace) -> None:
    if (args.certs is None) == (not args.insecure):
        raise IonmError("give --certs DIR (TLS) or --insecure (plain HTTP, tests only), "
                        "not both and not neither")


def _check_local(address: str, option: str) -> str:
    """``address`` as an IPv4 address of this machine, or one line saying why not."""
    try:
        ip = socket.gethostbyname(address)
    except OSError:
        raise IonmError(f"{option} {address}: unknown host") from None
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((ip, 0))
    except OSError:
        raise IonmError(f"{option} {address}: not an address of this machine") from None
    return ip


def start_publishing(args: argparse.Namespace, session: Session) -> Publisher:
    """The station's SDC publisher for ``run --publish-sdc`` (serving from now on)."""
    from ionm_station.remote.provider import Publisher, PublishSettings

    address = _check_local(args.sdc_address or "127.0.0.1", "--sdc-address")
    return Publisher(session, PublishSettings(
        address=address, port=args.sdc_port or DEFAULT_PORT, room=args.room or "",
        discoverable=args.discoverable, certs=args.certs, patient_id=args.patient_id,
        procedure=args.procedure))


def add_supervise_parser(sub: Any) -> None:
    """The ``supervise`` command."""
    p = sub.add_parser(
        "supervise", help="watch several stations over SDC (a wall of rooms, read-only)",
        description="Follow stations that run with --publish-sdc: a wall of rooms with their "
                    "alarm tiles, technical state, case time and last alarm, one alarm sound "
                    "for all rooms; click a room for its traces and events. Read-only: "
                    "nothing can be stimulated, set or acknowledged from here.")
    p.add_argument("--connect", action="append", default=[], metavar="HOST[:PORT]",
                   help=f"a station's address (its --sdc-address; port default {DEFAULT_PORT});"
                        " repeat for more rooms")
    p.add_argument("--discover", action="store_true",
                   help="find stations by WS-Discovery (UDP multicast on --sdc-address's "
                        "interface)")
    p.add_argument("--sdc-address", metavar="IP",
                   help="with --discover: this machine's address on the stations' network "
                        "(default 127.0.0.1)")
    p.add_argument("--room-limit", type=count, default=3, metavar="N",
                   help="rooms one reader should follow at most; a warning above it "
                        "(default 3, ACNS guidance)")
    p.add_argument("--headless", action="store_true",
                   help="no window: a line for every room that connects, is lost or alarms")
    p.add_argument("--json", type=Path, metavar="OUT",
                   help="with --headless: keep OUT up to date with the wall (every 0.5 s)")
    p.add_argument("--force", action="store_true", help="replace an existing --json file")
    p.add_argument("--seconds", type=positive, help="stop after this long (default: Ctrl-C)")
    _transport_arguments(p)


def _station(text: str) -> tuple[str, int]:
    host, sep, p = text.rpartition(":")
    if not sep:
        host, p = text, ""
    try:
        number = port(p) if p else DEFAULT_PORT
    except argparse.ArgumentTypeError:
        raise IonmError(f"--connect {text}: expected HOST[:PORT] with a port 1–65535") from None
    try:
        return socket.gethostbyname(host), number
    except OSError:
        raise IonmError(f"--connect {text}: unknown host {host!r}") from None


def cmd_supervise(args: argparse.Namespace) -> int:
    """``supervise``: follow stations, headless (lines and JSON) or in the window."""
    from ionm_station.outputs import check_outputs

    _check_transport(args)
    if not args.connect and not args.discover:
        raise IonmError("give --connect HOST[:PORT] (repeatable) or --discover")
    if args.json is not None and not args.headless:
        raise IonmError("--json applies to --headless (the window shows the wall itself)")
    if args.sdc_address is not None and not args.discover:
        raise IonmError("--sdc-address applies to --discover")
    stations = [_station(s) for s in args.connect]
    discover_on = _check_local(args.sdc_address or "127.0.0.1", "--sdc-address") \
        if args.discover else None
    check_outputs({"--json": args.json}, force=args.force)
    from ionm_station.remote.follow import Follower
    from ionm_station.remote.tls import ssl_contexts
    from ionm_station.remote.wall import Wall

    follower = Follower(Wall(args.room_limit), ssl_contexts(args.certs), stations, discover_on)
    if args.headless:
        return run_headless(follower, sys.stdout, args.json, args.force, args.seconds)
    from ionm_station.cli import check_display
    from ionm_station.remote.qt_wall import run_wall

    check_display()
    return run_wall(follower, args.seconds)


def _lines(follower: Follower, seen: dict[str, tuple], out: TextIO) -> None:
    """A line for every room whose connection or last alarm changed since ``seen``."""
    for room in follower.wall.rooms:
        d = room.to_dict()
        alarm = d["last_alarm"] or {}
        key = (d["connection"], d["reason"], alarm.get("station_time_s"))
        if seen.get(room.key) == key:
            continue
        before = seen.get(room.key)
        seen[room.key] = key
        stamp = time.strftime("%H:%M:%S")
        if before is None or before[:2] != key[:2]:
            text = d["connection"].upper() + (f" ({d['reason']})" if d["reason"] else "")
            if d["connection"] == "lost":
                text = "CONNECTION LOST" + (f" ({d['reason']})" if d["reason"] else "")
            print(f"{stamp}  {d['room']}: {text}", file=out, flush=True)
        if alarm and (before is None or before[2] != key[2]):
            print(f"{stamp}  {d['room']}: ALARM {alarm['tile']} {alarm['condition']} "
                  f"({alarm['priority']}) — {alarm['reason']}", file=out, flush=True)


def run_headless(follower: Follower, out: TextIO, json_path: Path | None, replace: bool,
                 seconds: float | None) -> int:
    """Follow until Ctrl-C, SIGTERM or ``seconds``; keep ``json_path`` up to date."""
    from ionm_station.outputs import write_text

    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    end = None if seconds is None else time.monotonic() + seconds
    seen: dict[str, tuple] = {}
    warning = follower.wall.warning()
    if warning:
        print(f"WARNING: {warning}", file=out, flush=True)
    written = False
    try:
        follower.start()
        next_json = 0.0
        while not stop.wait(0.1) and (end is None or time.monotonic() < end):
            _lines(follower, seen, out)
            if follower.wall.warning() != warning:
                warning = follower.wall.warning()
                if warning:
                    print(f"WARNING: {warning}", file=out, flush=True)
            if json_path is not None and time.monotonic() >= next_json:
                next_json = time.monotonic() + JSON_EVERY_S
                write_text(json_path, json.dumps(follower.wall.to_dict(), indent=1),
                           replace or written)
                written = True
    finally:
        follower.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    if json_path is not None:
        write_text(json_path, json.dumps(follower.wall.to_dict(), indent=1), replace or written)
    return 0
