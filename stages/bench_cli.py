"""`foley bench sample`: the reference vs the fast prior sampler (stages.bench does the work).

Arguments are checked before torch and the models are imported, so a bad flag fails at once.
"""

from __future__ import annotations

import argparse
import json

from foley.errors import RunError

BENCH_SIZES = ("small", "baseline")  # stages.bench.PRIOR_SIZES, named here so argument errors stay instant
DCASE_MAP = "20x86"


def add_bench_sample(benches: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    sample = benches.add_parser("sample", parents=[common], help="reference vs fast prior sampler: seconds per clip")
    sample.add_argument("--size", choices=BENCH_SIZES, default="small", help="prior size (default small; baseline: the DCASE prior)")
    sample.add_argument("--batch", type=int, default=16, help="clips sampled together (default 16)")
    sample.add_argument("--map", default=DCASE_MAP, help="prior map HEIGHTxWIDTH (default 20x86; the RVQ map is 40x43)")
    sample.add_argument("--reference-rows", type=int, default=3, help="time the reference on this many rows and extrapolate (default 3); 0 times the whole run")
    sample.add_argument("--dcase-set", choices=("auto", "on", "off"), default="auto", help="also time 100 clips x 7 classes, prior + decode + vocode (auto: on a GPU with the 20x86 map)")
    sample.add_argument("--dcase-batch", type=int, default=700, help="prior batch for the DCASE set (default 700: all clips at once)")
    sample.add_argument("--device", help="auto, cpu, cuda or cuda:N (default auto)")
    sample.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    sample.add_argument("--amp", action="store_true", help="run the fast sampler under bf16 autocast")
    sample.add_argument("--json", action="store_true", help="print one JSON object")
    sample.set_defaults(handler=cmd_bench_sample)


def cmd_bench_sample(args: argparse.Namespace) -> int:
    map_shape = _map_shape(args.map)
    limits = (("--batch", args.batch, 1), ("--dcase-batch", args.dcase_batch, 1),
              ("--reference-rows", args.reference_rows, 0), ("--threads", args.threads, 1))
    for flag, value, least in limits:
        if value is not None and value < least:
            raise RunError(f"{flag} must be at least {least}, got {value}")
    dcase_map = _map_shape(DCASE_MAP)
    if args.dcase_set == "on" and map_shape != dcase_map:
        raise RunError(f"--dcase-set on needs the DCASE prior map {DCASE_MAP}, got --map {args.map}")
    import torch

    from foley.runtime import resolve_device
    from stages.bench import bench_sample, format_sample_bench

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device or "auto")
    dcase = args.dcase_set == "on" or (args.dcase_set == "auto" and device.type == "cuda" and map_shape == dcase_map)
    result = bench_sample(args.size, args.batch, map_shape, args.reference_rows, device, args.amp,
                          args.dcase_batch if dcase else None, progress=not args.quiet)
    print(json.dumps(result.to_dict()) if args.json else format_sample_bench(result))
    return 0


def _map_shape(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise RunError(f"--map must be HEIGHTxWIDTH with positive integers (e.g. 20x86), got {text!r}")
    return int(parts[0]), int(parts[1])
