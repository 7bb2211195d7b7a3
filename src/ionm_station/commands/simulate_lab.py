"""``ionm-station simulate-lab DIR``: example files for the EMG lab, with their ground truth.

Writes simulated needle recordings (EDF+, one tibialis anterior channel: a normal, a neurogenic
and a myopathic motor unit pool, 30 s at 20 kHz; their simulated MUAPs lack the realistic
rise of a near unit, so ``muap`` reads them with ``--max-rise-ms 0``) and simulated nerve conduction studies of one
hand (normal, demyelinated, axonal, entrapped median: ``hand_TYPE.ncs.toml`` naming its
``hand_TYPE.h5``), so that ``muap``, ``ncs``, the lab window and the patient database can be
tried without a patient. ``truth.json`` holds what each file contains.

Wiring in ``cli.py``::

    from ionm_station.commands.simulate_lab import add_simulate_lab_parser, cmd_simulate_lab
    add_simulate_lab_parser(sub)
    ... if args.command == "simulate-lab": return cmd_simulate_lab(args)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

#: Needle pools and nerve types written, in this order.
POOLS = ("normal", "neurogenic", "myopathic")
NERVES = ("normal", "demyelinated", "axonal", "entrapped")


def add_simulate_lab_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``simulate-lab DIR [--seed N]``."""
    p = sub.add_parser("simulate-lab", help="write example needle EMG and nerve conduction files "
                                            "(simulated, with ground truth) for the EMG lab",
                       description="Write simulated needle recordings (needle_POOL.edf: normal, "
                                   "neurogenic, myopathic tibialis anterior) and nerve "
                                   "conduction studies (hand_TYPE.ncs.toml + hand_TYPE.h5: "
                                   "normal, demyelinated, axonal, entrapped median) into DIR, "
                                   "with truth.json. Existing files are never replaced.")
    p.add_argument("dir", type=Path, metavar="DIR", help="folder to write into (made if missing)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    return p


def cmd_simulate_lab(args: argparse.Namespace) -> int:
    """Write the files (refusing any that exist, before writing any) and print one line each."""
    from ionm_station.errors import IonmError
    from ionm_station.io.edf import write_edf
    from ionm_station.lab import needle_sim, nerve_sim
    from ionm_station.outputs import atomic_output, check_outputs, write_text

    folder: Path = args.dir
    if folder.exists() and not folder.is_dir():
        raise IonmError(f"{folder}: is not a folder")
    needles = {pool: folder / f"needle_{pool}.edf" for pool in POOLS}
    hands = {kind: folder / f"hand_{kind}.ncs.toml" for kind in NERVES}
    recordings = [p.with_name(p.name.replace(".ncs.toml", ".h5")) for p in hands.values()]
    folder.mkdir(parents=True, exist_ok=True)
    for path in [*needles.values(), *hands.values(), *recordings, folder / "truth.json"]:
        check_outputs({"": path})
    truth: dict[str, object] = {"seed": args.seed, "needle": {}, "ncs": {}}
    for pool, path in needles.items():
        case = needle_sim.simulate_pool(pool, args.seed)
        with atomic_output(path) as tmp:
            write_edf(tmp, case.fs_hz, ["EMG TA"], case.data_uv[:, None])
        truth["needle"][path.name] = {"pool": pool, "muscle": "tibialis anterior",
                                      "motor_units": len(case.muaps)}
        print(f"{path}: {pool} pool, {len(case.muaps)} motor units, "
              f"{len(case.data_uv) / case.fs_hz:.0f} s at {case.fs_hz:.0f} Hz")
    for kind, path in hands.items():
        study = nerve_sim.simulate(kind, args.seed)
        nerve_sim.write_study(study, path)
        truth["ncs"][path.name] = {"nerve_type": kind}
        print(f"{path}: {kind} median nerve (and its recording)")
    write_text(folder / "truth.json", json.dumps(truth, indent=1) + "\n")
    print(f"try: ionm-station muap {needles['neurogenic']} --muscle 'tibialis anterior' "
          "--max-rise-ms 0 --json out.json; "
          f"ionm-station ncs {hands['entrapped']} --json ncs.json; ionm-station lab")
    return 0
