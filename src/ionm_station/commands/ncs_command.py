"""``ionm-station ncs``: a nerve conduction study from a study description and its recording.

Wiring in ``cli.py``::

    from ionm_station.commands.ncs_command import add_ncs_parser, cmd_ncs
    add_ncs_parser(sub)
    ... if args.command == "ncs": return cmd_ncs(args)

Errors are :class:`~ionm_station.errors.IonmError` subclasses (one line, exit code 2).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_ncs_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``ncs STUDY.ncs.toml --json OUT [--references FILE] [--force]``."""
    p = sub.add_parser("ncs", help="nerve conduction study: latencies, amplitudes, velocities, "
                                   "F-waves, flags against reference values",
                       description="Measure a nerve conduction study: motor (distal latency, "
                                   "amplitude, area, duration, conduction velocity), sensory "
                                   "(onset and peak latency, amplitude, velocity) and F-waves "
                                   "(minimum and mean latency, persistence), flag them against "
                                   "published reference values and name the pattern (carpal "
                                   "tunnel, demyelinating, axonal). FILE is a study description "
                                   "(TOML) naming the recording (.h5) whose stimulus events carry "
                                   "their site; see docs/emg-lab.md.")
    p.add_argument("file", type=Path, metavar="FILE",
                   help="study description (.ncs.toml) naming its recording")
    p.add_argument("--json", type=Path, required=True, metavar="OUT", help="write the results here")
    p.add_argument("--references", type=Path, metavar="FILE",
                   help="reference values (TOML, the shipped reference_ncs.toml's layout; "
                        "default: the shipped ones)")
    p.add_argument("--force", action="store_true", help="replace an existing OUT")
    return p


def cmd_ncs(args: argparse.Namespace) -> int:
    """Measure, write the JSON atomically and print one line per study, flag and pattern."""
    from ionm_station.errors import input_problem
    from ionm_station.lab.ncs import NcsError, analyze, load_description
    from ionm_station.outputs import check_outputs, existing_files, write_text

    problem = input_problem(args.file)
    if problem:
        raise NcsError(f"{args.file}: {problem}")
    recording = load_description(args.file).recording
    check_outputs({"--json": args.json},
                  [args.file, recording, *existing_files(args.references)], force=args.force)
    result = analyze(args.file, args.references)
    write_text(args.json, json.dumps(result, indent=1, ensure_ascii=False) + "\n",
               replace=args.force)
    for st in result["studies"]:
        print(_study_line(st))
    for f in result["flags"]:
        print(f"  flag: {f['reason']}")
    for pat in result["patterns"]:
        print(f"  pattern ({pat['side'] or 'side not given'}): {pat['summary']}")
    print(f"{len(result['studies'])} studies, {len(result['flags'])} flags -> {args.json}")
    return 0


def _study_line(st: dict) -> str:
    """One line for a measured study."""
    if st["kind"] == "f_wave":
        if st.get("min_latency_ms") is None:
            return f"{st['name']}: no F-wave in {st['stimuli']} stimuli"
        return (f"{st['name']}: min {st['min_latency_ms']:.1f} ms, mean "
                f"{st['mean_latency_ms']:.1f} ms, persistence {st['f_waves']}/{st['stimuli']}")
    parts = []
    for site in st["sites"]:
        if not site.get("response"):
            parts.append(f"{site['site']} no response")
        elif st["kind"] == "motor":
            parts.append(f"{site['site']} {site['onset_latency_ms']:.2f} ms "
                         f"{site['amplitude_mv']:.1f} mV")
        else:
            parts.append(f"{site['site']} {site['onset_latency_ms']:.2f}/"
                         f"{site['peak_latency_ms']:.2f} ms {site['amplitude_uv']:.1f} µV")
    parts += [f"{seg['velocity_m_s']:.0f} m/s" for seg in st.get("segments", [])
              if seg.get("velocity_m_s") is not None]
    return f"{st['name']}: " + ", ".join(parts)
