"""`foley bench train`: the reference and the fast training step, timed in one process.

Arguments are checked before torch is imported; the work is foley.stages.commands.training_speed.
"""

from __future__ import annotations

import argparse
import json

from foley.stages.commands.bench_sizes import PRIOR_SIZES
from foley.util.errors import RunError

MODELS = ("prior", "autoencoder")


def add_bench_train(benches: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    train = benches.add_parser("train", parents=[common], help="reference vs fast training step: steps/s, clips/s, memory")
    train.add_argument("--model", choices=MODELS, default="prior", help="default prior")
    train.add_argument("--size", choices=tuple(PRIOR_SIZES), default="small",
                       help="small, or baseline: the DCASE 2023 baseline's prior / VQ-VAE (default small)")
    train.add_argument("--batch", type=int, help="clips per step (default: prior 2, autoencoder 16)")
    train.add_argument("--dropout", type=float, help="the prior's dropout (default: the size's, 0.1; the quick config "
                       "trains with 0, which takes the fused attention kernel)")
    train.add_argument("--steps", type=int, default=3, help="timed steps per path, interleaved (default 3)")
    train.add_argument("--device", help="auto, cpu, cuda or cuda:N (default auto)")
    train.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    train.add_argument("--amp", action="store_true", help="the fast path under bf16 autocast, as config amp: true trains "
                       "(CUDA, CPUs with AMX-BF16 or AVX512-BF16); the reference stays float32")
    train.add_argument("--tf32", action="store_true", help="both paths with TF32 products, as the trainers run (CUDA)")
    train.add_argument("--compile", action="store_true", help="torch.compile the fast path (its compilation is untimed)")
    train.add_argument("--json", action="store_true", help="print one JSON object")
    train.set_defaults(handler=cmd_bench_train)


def cmd_bench_train(args: argparse.Namespace) -> int:
    for flag, value in (("--batch", args.batch), ("--steps", args.steps), ("--threads", args.threads)):
        if value is not None and value < 1:
            raise RunError(f"{flag} must be at least 1, got {value}")
    if args.dropout is not None and (args.model != "prior" or not 0.0 <= args.dropout < 1.0):
        raise RunError(f"--dropout must be in [0, 1) and is the prior's only (--model prior), got {args.dropout} "
                       f"with --model {args.model}")
    import torch

    from foley.stages.commands.training_speed import bench_train, format_train_bench
    from foley.util.device import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device or "auto")
    result = bench_train(args.model, args.size, args.batch, args.steps, device, args.amp, args.compile, args.tf32,
                         dropout=args.dropout)
    print(json.dumps(result.to_dict()) if args.json else format_train_bench(result))
    return 0
