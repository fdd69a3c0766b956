"""`foley bench sample|train|vocoder|fad`: speed on the current device, one sub-command per component.

The work happens in foley.stages.commands.bench_sample (sampler), foley.stages.commands.vocoding
(vocoder) and the embedders.

Arguments are checked before torch and the models are imported, so a bad flag fails at once.
"""

from __future__ import annotations

import argparse
import json
import os

from foley.registry import EMBEDDERS, PROTOCOLS
from foley.stages.commands.bench_sizes import DCASE_MAP as DCASE_MAP_SHAPE
from foley.stages.commands.bench_sizes import PRIOR_SIZES
from foley.stages.commands.bench_train import add_bench_train
from foley.stages.commands.evaluation import add_weights_arguments, weights_from
from foley.util.errors import RunError

DCASE_MAP = "x".join(map(str, DCASE_MAP_SHAPE))
CLIP_SECONDS = 4  # bench fad reports clips per second for DCASE's 4 s clips


def add_bench_sample(benches: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    sample = benches.add_parser("sample", parents=[common], help="reference vs fast prior sampler: seconds per clip")
    sample.add_argument("--size", choices=tuple(PRIOR_SIZES), default="small",
                        help="prior size (default small; baseline: the DCASE prior)")
    sample.add_argument("--batch", type=int, default=16, help="clips sampled together (default 16)")
    sample.add_argument("--map", default=DCASE_MAP, help="prior map HEIGHTxWIDTH (default 20x86; the RVQ map is 40x43)")
    sample.add_argument("--reference-rows", type=int, default=3,
                        help="time the reference on this many rows and extrapolate (default 3); 0 times the whole run")
    sample.add_argument("--dcase-set", choices=("auto", "on", "off"), default="auto",
                        help="also time 100 clips x 7 classes, prior + decode + vocode (auto: on a GPU with the 20x86 map)")
    sample.add_argument("--dcase-batch", type=int, default=700,
                        help="prior batch for the DCASE set (default 700: all clips at once)")
    sample.add_argument("--device", help="auto, cpu, cuda or cuda:N (default auto)")
    sample.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    sample.add_argument("--amp", action="store_true", help="run the fast sampler under bf16 autocast")
    sample.add_argument("--guidance", type=float, default=3.0,
                        help="also time the fast sampler with classifier-free guidance at this scale (default 3; 1: skip)")
    sample.add_argument("--json", action="store_true", help="print one JSON object")
    sample.set_defaults(handler=cmd_bench_sample)


def cmd_bench_sample(args: argparse.Namespace) -> int:
    map_shape = _map_shape(args.map)
    limits = (("--batch", args.batch, 1), ("--dcase-batch", args.dcase_batch, 1),
              ("--reference-rows", args.reference_rows, 0), ("--threads", args.threads, 1), ("--guidance", args.guidance, 0))
    for flag, value, least in limits:
        if value is not None and value < least:
            raise RunError(f"{flag} must be at least {least}, got {value}")
    dcase_map = _map_shape(DCASE_MAP)
    if args.dcase_set == "on" and map_shape != dcase_map:
        raise RunError(f"--dcase-set on needs the DCASE prior map {DCASE_MAP}, got --map {args.map}")
    import torch

    from foley.stages.commands.bench_sample import bench_sample, format_sample_bench
    from foley.util.device import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device or "auto")
    dcase = args.dcase_set == "on" or (args.dcase_set == "auto" and device.type == "cuda" and map_shape == dcase_map)
    result = bench_sample(args.size, args.batch, map_shape, args.reference_rows, device, args.amp,
                          args.dcase_batch if dcase else None, progress=not args.quiet, guidance=args.guidance)
    print(json.dumps(result.to_dict()) if args.json else format_sample_bench(result))
    return 0


def _map_shape(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(part.isdigit() and int(part) > 0 for part in parts):
        raise RunError(f"--map must be HEIGHTxWIDTH with positive integers (e.g. 20x86), got {text!r}")
    return int(parts[0]), int(parts[1])


def add_bench_commands(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """`foley bench <what>`: speed on the current device; each benchmark is one sub-parser."""
    bench = commands.add_parser("bench", help="benchmarks (no run folder, no data)")
    benches = bench.add_subparsers(dest="bench", required=True)
    add_bench_sample(benches, common)
    add_bench_train(benches, common)
    add_bench_fad(benches, common)
    bench_vocoder = benches.add_parser(
        "vocoder", parents=[common], help="HiFi-GAN clips per second per batch size (DCASE config, random weights)")
    bench_vocoder.add_argument("--batch-sizes", default="1,16,64", help="comma-separated (default 1,16,64)")
    bench_vocoder.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    bench_vocoder.add_argument("--repeats", type=int, default=3, help="timed calls per batch size (default 3)")
    bench_vocoder.set_defaults(handler=cmd_bench_vocoder)


def add_bench_fad(benches: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    bench = benches.add_parser("fad", parents=[common], help="FAD embedder speed: embeddings per second")
    bench.add_argument("--embedder", choices=EMBEDDERS.names(), default="vggish", help="default vggish")
    add_weights_arguments(bench, " (default: random weights, which time the same network)")
    bench.add_argument("--protocol", choices=PROTOCOLS.names(),
                       help="windows (default dcase2023 for 16 kHz embedders, else dcase2024: whole 4 s clips for panns-wglm)")
    bench.add_argument("--batch-sizes", default="1,16,64", help="comma-separated windows per call (default 1,16,64)")
    bench.add_argument("--repeats", type=int, default=3, help="timed calls per batch size (default 3)")
    bench.add_argument("--device", help="auto, cpu, cuda or cuda:N (default auto)")
    bench.set_defaults(handler=cmd_bench_fad)


def cmd_bench_fad(args: argparse.Namespace) -> int:
    sizes = _batch_sizes(args)
    given = weights_from(args).get(args.embedder)
    entry = EMBEDDERS.entry(args.embedder)
    if given is not None:
        entry.weights.check(args.embedder, given)
    import numpy as np
    import torch

    from foley.evaluate.embedders import build_embedder, random_embedder
    from foley.evaluate.embedding import benchmark_embedder
    from foley.evaluate.protocols import DCASE2023, clip_windows, get_protocol
    from foley.util.device import resolve_device

    device = resolve_device(args.device or "auto")
    random_weights = entry.weights is not None and given is None
    if random_weights:
        embedder = random_embedder(args.embedder, device)
    else:
        embedder = build_embedder(args.embedder, weights_from(args), device)
    protocol = get_protocol(args.protocol or ("dcase2023" if embedder.sample_rate == DCASE2023.sample_rate else "dcase2024"))
    framing = protocol.framing(embedder)
    clip_rate = 22050 if framing.resampler is None else framing.sample_rate
    per_clip = clip_windows(np.ones(CLIP_SECONDS * clip_rate), framing).shape[0]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"embedder {embedder.name}{' (random weights: speed only, embeddings meaningless)' if random_weights else ''}, "
          f"protocol {protocol.name} ({per_clip} embeddings per {CLIP_SECONDS} s clip), device {device}, "
          f"torch threads {torch.get_num_threads()}, load average {load:.1f} on {os.cpu_count()} cores")
    for result in benchmark_embedder(embedder, protocol, sizes, device, args.repeats):
        print(f"  batch {result.batch_size:4d}: {result.embeddings_per_second:10.1f} embeddings/s "
              f"({result.embeddings_per_second / per_clip:8.1f} clips/s)")
    return 0


def cmd_bench_vocoder(args: argparse.Namespace) -> int:
    batch_sizes = _batch_sizes(args)
    from foley.stages.commands.vocoding import bench_vocoder_table
    from foley.util.device import resolve_device

    print(bench_vocoder_table(batch_sizes, resolve_device(args.device or "auto"), args.repeats))
    return 0


def _batch_sizes(args: argparse.Namespace) -> tuple[int, ...]:
    """--batch-sizes as positive integers (and --repeats at least 1), or one clear error."""
    try:
        sizes = tuple(int(size) for size in args.batch_sizes.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1 or args.repeats < 1:
        raise RunError(
            f"--batch-sizes takes positive integers separated by commas (e.g. 1,16,64), got {args.batch_sizes!r}; "
            f"--repeats must be at least 1"
        )
    return sizes
