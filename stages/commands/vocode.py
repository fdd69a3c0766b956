"""`foley vocode`: log-mels (.npy) -> 16-bit wavs with HiFi-GAN or Griffin-Lim (foley.stages.commands.vocoding does the work).

Arguments are checked before torch and the models are imported, so a bad flag fails at once.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from foley.config import DCASE_HIFIGAN_HINT, load_config
from foley.util.errors import RunError

log = logging.getLogger("foley")


def add_vocode_command(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    vocode = commands.add_parser("vocode", parents=[common], help="log-mels (.npy) -> 16-bit wavs with HiFi-GAN or Griffin-Lim")
    vocode.add_argument("input", type=Path, help=".npy log-mel (n_mels x T, or N x n_mels x T) or a folder of them")
    which = vocode.add_mutually_exclusive_group(required=True)
    which.add_argument("--hifigan", type=Path, metavar="CKPT", help="official HiFi-GAN generator file g_<step>")
    which.add_argument("--griffinlim", action="store_true", help="the weight-free fallback (settings from --config)")
    vocode.add_argument("--hifigan-config", type=Path, metavar="JSON", help="the official config JSON saved with CKPT")
    vocode.add_argument("--config", default=None, help="foley config giving the mel and Griffin-Lim settings (default quick)")
    vocode.add_argument("--out", type=Path, required=True, help="output folder")
    vocode.add_argument("--batch-size", type=int, default=16, help="mels per vocoder call (default 16)")
    vocode.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    vocode.add_argument("--force", action="store_true", help="overwrite existing wavs")
    vocode.set_defaults(handler=cmd_vocode)


def cmd_vocode(args: argparse.Namespace) -> int:
    _check_vocode_args(args)
    config = load_config(args.config)
    from foley.stages.commands.vocoding import command_vocoder, vocode_files
    from foley.util.device import resolve_device

    vocoder, n_mels, n_mels_from = command_vocoder(args.hifigan, args.hifigan_config, config, args.batch_size)
    vocoder.to(resolve_device(args.device or "auto"))
    paths = vocode_files(args.input, vocoder, n_mels, n_mels_from, args.out, args.batch_size, args.force)
    log.info("wrote %d wavs (16-bit, %d Hz) to %s with %s", len(paths), vocoder.sample_rate, args.out, vocoder.name)
    return 0


def _check_vocode_args(args: argparse.Namespace) -> None:
    if args.batch_size < 1:
        raise RunError("--batch-size must be at least 1")
    if args.hifigan is None and args.hifigan_config is not None:
        raise RunError("--hifigan-config goes with --hifigan; --griffinlim takes its settings from --config")
    if args.hifigan is not None and args.hifigan_config is None:
        raise RunError("--hifigan needs --hifigan-config JSON, the official config JSON saved with the checkpoint")
    expected = {"--hifigan": "an official HiFi-GAN generator file g_<step>",
                "--hifigan-config": "the official HiFi-GAN config JSON saved with the checkpoint"}
    for flag, path in (("--hifigan", args.hifigan), ("--hifigan-config", args.hifigan_config)):
        if path is not None and not path.is_file():
            raise RunError(f"{flag} '{path}' does not exist; expected {expected[flag]} ({DCASE_HIFIGAN_HINT})")
    if not args.input.exists():
        raise RunError(f"input '{args.input}' does not exist; give a .npy log-mel (n_mels x frames or "
                       "N x n_mels x frames) or a folder of them")
