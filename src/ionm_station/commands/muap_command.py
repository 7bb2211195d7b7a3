"""``ionm-station muap``: quantitative needle EMG of one channel (EDF/BDF, WFDB, .h5).

Wiring in ``cli.py``::

    from ionm_station.commands.muap_command import add_muap_parser, cmd_muap
    add_muap_parser(sub)
    ... if args.command == "muap": return cmd_muap(args)

Errors are :class:`~ionm_station.errors.IonmError` subclasses (one line, exit code 2).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ionm_station.errors import IonmError, input_problem


class NeedleInputError(IonmError):
    """A needle recording that cannot be analysed; the message names the file and why."""


def add_muap_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``muap FILE [--channel LABEL] [--muscle NAME] --json OUT [--pdf OUT] [--force]``."""
    p = sub.add_parser("muap", help="quantitative needle EMG: MUAPs, spontaneous activity, verdict",
                       description="Detect and group the motor unit potentials of one needle "
                                   "channel, measure them, grade spontaneous activity and judge "
                                   "the muscle against its reference limits.")
    p.add_argument("file", type=Path, help="EDF/EDF+/BDF, WFDB header (.hea) or recording (.h5)")
    p.add_argument("--channel", metavar="LABEL", help="the channel to analyse (needed when the "
                                                       "file has more than one)")
    p.add_argument("--muscle", metavar="NAME",
                   help="muscle for the reference limits, e.g. 'tibialis anterior' (default: "
                        "read from the channel label or the WFDB header when it names one)")
    p.add_argument("--max-rise-ms", type=float, default=0.5, metavar="MS",
                   help="accept a MUAP for measurement only when the rise time of its main "
                        "spike is at most this (default 0.5 ms; some labs use 1; 0 turns "
                        "the rise-time criterion off)")
    p.add_argument("--json", type=Path, required=True, metavar="OUT", help="write the results here")
    p.add_argument("--pdf", type=Path, metavar="OUT.pdf", help="also write a one-page report")
    p.add_argument("--force", action="store_true", help="replace existing output files")
    return p


def _read_wfdb(path: Path) -> tuple[float, list[str], np.ndarray, list[str], str]:
    """(rate, labels, samples × channels µV, notes, header comments) of a WFDB record.
    Format-16 jumps of more than half the int16 range between neighbours (a value that may
    have wrapped around) are counted in the notes; the values are kept as read (a true jump
    can be that large, so unwrapping by neighbours is not safe)."""
    import wfdb

    record = str(path.with_suffix(""))
    try:
        rec = wfdb.rdrecord(record, physical=False)
    except (OSError, ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
        # wfdb 4.3 on a damaged header or data file: FileNotFoundError (no .dat),
        # HeaderSyntaxError (a ValueError), ValueError (short data), TypeError (fields missing)
        raise NeedleInputError(f"{path}: not a readable WFDB record ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})") from None
    d = np.asarray(rec.d_signal, dtype=np.int64)
    notes = []
    for c, fmt in enumerate(rec.fmt):
        jumps = int(np.count_nonzero(np.abs(np.diff(d[:, c])) > 32768)) if fmt == "16" else 0
        if jumps:
            notes.append(f"{rec.sig_name[c]}: {jumps} jumps between neighbouring samples larger "
                         "than half the int16 range: the record may have wrapped around "
                         "(values kept as read)")
    scale = {"mv": 1000.0, "uv": 1.0, "v": 1e6}
    data = np.empty(d.shape)
    for c in range(d.shape[1]):
        unit = (rec.units[c] or "mV").lower().replace("µ", "u")
        if unit not in scale:
            raise NeedleInputError(f"{path}: channel {rec.sig_name[c]} is in {rec.units[c]!r}, "
                                   "not a voltage (mV, uV or V)")
        data[:, c] = (d[:, c] - rec.baseline[c]) / rec.adc_gain[c] * scale[unit]
    return float(rec.fs), list(rec.sig_name), data, notes, " ".join(rec.comments or [])


def load_needle(path: Path, channel: str | None) -> tuple[float, str, np.ndarray, list[str], str]:
    """(rate Hz, label, samples µV, notes, text that may name the muscle) of one channel."""
    problem = input_problem(path)
    if problem:
        raise NeedleInputError(f"{path}: {problem}")
    if path.suffix.lower() in (".hea", ".dat") and path.with_suffix(".hea").is_file():
        fs, labels, data, notes, text = _read_wfdb(path.with_suffix(".hea"))
    else:
        from ionm_station.analysis import load_record

        record, _ = load_record(path)
        fs, labels, data, notes, text = (record.sample_rate_hz, record.labels, record.data, [],
                                         "")
    if channel is None:
        if len(labels) != 1:
            raise NeedleInputError(f"{path}: {len(labels)} channels ({', '.join(labels)}); "
                                   "choose one with --channel")
        c = 0
    elif channel in labels:
        c = labels.index(channel)
    else:
        raise NeedleInputError(f"{path}: no channel {channel!r} (channels: {', '.join(labels)})")
    x = np.asarray(data[:, c], dtype=float)
    if x.size < fs * 1.0:
        raise NeedleInputError(f"{path}: {x.size / fs:.2f} s of signal; a needle analysis needs "
                               "at least 1 s")
    if fs < 2000:
        raise NeedleInputError(f"{path}: sampled at {fs:g} Hz; needle EMG needs at least 2 kHz")
    bad = ~np.isfinite(x)
    if bad.any():
        notes.append(f"{int(bad.sum())} samples missing (NaN) were set to 0 µV")
    return fs, labels[c], x, notes, f"{labels[c]} {text}"


def cmd_muap(args: argparse.Namespace) -> int:
    from ionm_station.lab.needle import analyse
    from ionm_station.lab.reference import load_reference, muscle_in_text, muscle_reference
    from ionm_station.outputs import atomic_output, check_outputs

    check_outputs({"--json": args.json, "--pdf": args.pdf}, [args.file], force=args.force)
    if args.muscle and muscle_reference(args.muscle) is None:
        raise NeedleInputError(f"--muscle {args.muscle}: not in the reference table (it holds "
                               + ", ".join(sorted(load_reference()["muscles"])) + ")")
    fs, label, x, notes, text = load_needle(args.file, args.channel)
    muscle = args.muscle or muscle_in_text(text)
    if args.max_rise_ms < 0:
        raise NeedleInputError(f"--max-rise-ms {args.max_rise_ms:g}: must be >= 0")
    result = analyse(x, fs, muscle, notes, max_rise_ms=args.max_rise_ms or None)
    doc = {"file": str(args.file), "channel": label, **result.to_json()}
    import contextlib

    with contextlib.ExitStack() as outputs:
        tmp = outputs.enter_context(atomic_output(args.json, replace=args.force))
        tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
        if args.pdf is not None:
            from ionm_station.lab.muap_pdf import write_muap_pdf

            pdf_tmp = outputs.enter_context(atomic_output(args.pdf, replace=args.force))
            write_muap_pdf(pdf_tmp, doc, result)
    s = doc["summary"]
    grades = {k: g for k, g in doc["spontaneous_grades"].items() if g}
    print(f"{args.file} [{label}, {muscle or 'muscle not given'}]: {s['n_muaps']} MUAPs "
          f"({s['n_not_accepted']} not accepted), mean {s['mean_amplitude_uv']} µV, {s['mean_duration_ms']} ms, polyphasic "
          f"{s['polyphasic_fraction']}; {s['pattern']}; spontaneous: "
          f"{', '.join(f'{k} {g}' for k, g in grades.items()) or 'none'} -> {args.json}")
    return 0
