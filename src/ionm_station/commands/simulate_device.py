"""``ionm-station simulate-device``: the serial amplifier emulator on a pseudo-terminal.

Wiring (in ``cli.py``)::

    from ionm_station.commands.simulate_device import add_simulate_device_parser, cmd_simulate_device
    add_simulate_device_parser(sub)                 # in build_parser()
    if args.command == "simulate-device": return cmd_simulate_device(args)   # in main()
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from ionm_station.commands.args import OneLineParser, count, positive, probability
from ionm_station.outputs import OutputError, check_outputs, existing_files, write_text
from ionm_station.sim.emulator import DeviceEmulator, EmulatorSettings


def add_simulate_device_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``simulate-device`` sub-command to ``subparsers``; returns its parser."""
    p = subparsers.add_parser(
        "simulate-device", help="emulate the serial amplifier on a pseudo-terminal",
        description="Stream the simulated amplifier through the real serial protocol on a "
                    "pseudo-terminal linked at PATH, with optional injected faults. Prints the "
                    "exact fault counts as JSON at exit.")
    p.add_argument("--link", type=Path, required=True, metavar="PATH",
                   help="symlink to create for the device side, e.g. /tmp/ionm-amp")
    p.add_argument("--rate", type=positive, default=10000.0, metavar="HZ",
                   help="samples per second per channel, 2000–20000 (default 10000)")
    p.add_argument("--channels", type=count, default=16, metavar="N", help="channels (default 16)")
    p.add_argument("--montage", help="montage name or path (default: lumbar, or combined32 "
                                     "above 16 channels)")
    p.add_argument("--scenario", default="lumbar_demo", help="simulator scenario name or path")
    p.add_argument("--seed", type=int, help="simulator seed (default: the scenario's)")
    p.add_argument("--uv-per-lsb", type=positive, default=0.1, metavar="UV",
                   help="µV per ADC step; must match the profile (default 0.1)")
    p.add_argument("--samples-per-frame", type=count, metavar="N",
                   help="samples per channel per frame (default: 1 ms worth)")
    p.add_argument("--corrupt-rate", type=probability, default=0.0, metavar="P",
                   help="probability per frame of corrupting it (CRC error)")
    p.add_argument("--drop-rate", type=probability, default=0.0, metavar="P",
                   help="probability per frame of not sending it (sequence gap)")
    p.add_argument("--disconnect-after", type=positive, metavar="S",
                   help="pull the cable after S wall-clock seconds (link removed, exit)")
    p.add_argument("--seconds", type=positive, metavar="S",
                   help="stop after S seconds of signal (default: until Ctrl-C / SIGTERM)")
    p.add_argument("--speed", type=positive, default=1.0, metavar="X",
                   help="multiple of real time (default 1)")
    p.add_argument("--stats", type=Path, metavar="FILE", help="also write the counts as JSON here")
    p.add_argument("--force", action="store_true", help="replace an existing --stats file")
    return p


def cmd_simulate_device(args: argparse.Namespace) -> int:
    """Run the emulator until done or SIGTERM/SIGINT; print counts as JSON; 0 on success."""
    try:
        check_outputs({"--stats": args.stats}, [args.link, *existing_files(args.montage, args.scenario)], force=args.force)
    except OutputError as exc:
        print(f"ionm-station: error: {exc}", file=sys.stderr)
        return 2
    settings = EmulatorSettings(
        link=args.link, rate_hz=args.rate, channels=args.channels, montage=args.montage,
        scenario=args.scenario, seed=args.seed, uv_per_lsb=args.uv_per_lsb,
        samples_per_frame=args.samples_per_frame, corrupt_rate=args.corrupt_rate,
        drop_rate=args.drop_rate, disconnect_after_s=args.disconnect_after,
        seconds=args.seconds, speed=args.speed)
    try:
        emulator = DeviceEmulator(settings)
    except ValueError as exc:
        print(f"ionm-station: error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        with emulator:
            print(f"simulate-device: {emulator.device} linked at {settings.link} — "
                  f"{settings.channels} ch @ {settings.rate_hz:g} Hz, "
                  f"{emulator.stats.samples_per_frame} samples/frame", file=sys.stderr,
                  flush=True)
            stats = emulator.run(stop)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    text = json.dumps(stats.to_dict())
    print(text, flush=True)
    if args.stats is not None:
        write_text(args.stats, text + "\n", replace=args.force)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry: ``python -m ionm_station.commands.simulate_device --link PATH ...``."""
    parser = OneLineParser(prog="ionm-station")
    add_simulate_device_parser(parser.add_subparsers(dest="command", required=True))
    return cmd_simulate_device(parser.parse_args(["simulate-device", *(argv or sys.argv[1:])]))


if __name__ == "__main__":
    sys.exit(main())
