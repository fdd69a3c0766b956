"""The train_vocoder stage and HiFi-GAN sampling through `foley run`, at toy size, in temporary folders."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import soundfile as sf
import torch
from toy_hifigan import train_overrides, write_toy_hifigan

from foley.stages.commands.cli import main
from foley.vocoders.hifigan import HiFiGANVocoder
from foley.vocoders.hifigan_files import complete_checkpoint_steps
from foley.vocoders.hifigan_task import LOOP_KEY
from foley.vocoders.hifigan_training import DISCRIMINATOR_KEYS

CLASSES = ["dog_bark", "footstep", "gunshot", "keyboard", "moving_motor_vehicle", "rain", "sneeze_cough"]
# TOY with a 5 x 11 prior map and one epoch per model: the stages before the vocoder in seconds.
FAST = ["autoencoder.strides=[[4,4],[4,8]]", "autoencoder.quantizer.levels=1", "autoencoder.train.epochs=1",
        "prior.train.epochs=1", "sample.batch_size=14"]
UP_TO_PRIOR = "prepare,train_vqvae,extract_codes,train_prior"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def sets(overrides):
    return [item for o in overrides for item in ("--set", o)]


def foley_run(run, overrides, stages):
    return main(["run", "--quiet", "--out", str(run), "--stages", stages, *sets(overrides)])


def details(run, stage):
    return json.loads((run / stage / "manifest.json").read_text())["details"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Overrides and a run folder with every stage before the vocoder done."""
    from conftest import TOY

    overrides = TOY + FAST
    run = tmp_path_factory.mktemp("runs") / "base"
    assert foley_run(run, overrides, UP_TO_PRIOR) == 0
    return overrides, run


def copy_of(base_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    return run


def sample_layout(run):
    """Every sample file (relative path) -> (rate, channels, frames, subtype)."""
    files = sorted((run / "sample" / "samples").rglob("*.wav"))
    layout = {}
    for path in files:
        info = sf.info(str(path))
        layout[str(path.relative_to(run / "sample" / "samples"))] = (info.samplerate, info.channels, info.frames, info.subtype)
    return layout


def test_a_loaded_hifigan_writes_the_griffinlim_sample_layout(base, tmp_path):
    overrides, base_run = base
    checkpoint, config = write_toy_hifigan(tmp_path / "hifigan")
    griffinlim, hifigan = copy_of(base_run, tmp_path / "gl"), copy_of(base_run, tmp_path / "hg")
    assert foley_run(griffinlim, overrides, "train_vocoder,sample") == 0
    loaded = ["vocoder.type=hifigan", f"vocoder.hifigan.checkpoint={checkpoint}", f"vocoder.hifigan.config={config}"]
    assert foley_run(hifigan, overrides + loaded, "train_vocoder,sample") == 0

    expected = {f"{name}/{i:04d}.wav": (22050, 1, 88200, "PCM_16") for name in CLASSES for i in (1, 2)}
    assert sample_layout(griffinlim) == sample_layout(hifigan) == expected
    assert details(griffinlim, "train_vocoder") == {"trained": False, "reason": "vocoder.type is griffinlim"}
    assert details(hifigan, "train_vocoder")["reason"] == f"vocoder.hifigan.checkpoint is given ({checkpoint})"
    assert details(hifigan, "sample")["vocoder"] == f"hifigan({checkpoint})"
    assert sorted(p.name for p in (hifigan / "train_vocoder").iterdir()) == ["manifest.json"]


def test_training_lowers_validation_mel_l1_and_the_run_samples_with_it(base, tmp_path):
    overrides, base_run = base
    _, toy_json = write_toy_hifigan(tmp_path / "hifigan")
    run = copy_of(base_run, tmp_path)
    assert foley_run(run, overrides + train_overrides(toy_json), "train_vocoder,sample") == 0

    trained = details(run, "train_vocoder")
    assert trained["trained"] and trained["steps"] == 12 and trained["generator"] == "g_00000011"
    assert trained["train_clips"] == 21 and trained["validation"] == "3 clips of the validation split"
    print(f"validation mel L1 {trained['val_mel_l1_untrained']:.3f} -> {trained['val_mel_l1']:.3f}")
    assert trained["val_mel_l1"] < 0.7 * trained["val_mel_l1_untrained"]
    metrics = list(csv.DictReader(open(run / "train_vocoder" / "metrics.csv")))
    assert [(r["epoch"], r["step"]) for r in metrics] == [("1", "6"), ("2", "12")]
    assert float(metrics[-1]["val/mel_l1"]) == pytest.approx(trained["val_mel_l1"], rel=1e-4)

    folder = run / "train_vocoder"
    assert complete_checkpoint_steps(folder) == [11]  # keep_checkpoints 1
    assert list(torch.load(folder / "g_00000011", weights_only=True)) == ["generator"]
    state = torch.load(folder / "do_00000011", weights_only=True)
    assert set(state) == set(DISCRIMINATOR_KEYS) | {LOOP_KEY} and (state["steps"], state["epoch"]) == (11, 2)
    assert json.loads((folder / "config.json").read_text())["upsample_initial_channel"] == 32
    HiFiGANVocoder.from_files(folder / "g_00000011", folder / "config.json")  # strict official loading

    assert list(sample_layout(run).values()) == [(22050, 1, 88200, "PCM_16")] * 14
    assert details(run, "sample")["vocoder"] == f"hifigan({folder / 'g_00000011'})"


def test_a_killed_training_resumes_from_the_saved_step(base, tmp_path):
    overrides, base_run = base
    _, toy_json = write_toy_hifigan(tmp_path / "hifigan")
    settings = overrides + train_overrides(toy_json) + ["vocoder.hifigan.train.keep_checkpoints=0"]
    run = copy_of(base_run, tmp_path)
    args = [sys.executable, "-m", "foley", "run", "--quiet", "--out", str(run), "--stages", "train_vocoder", *sets(settings)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 900  # a generous bound on a loaded machine; the loop ends when the checkpoint appears
    while not complete_checkpoint_steps(run / "train_vocoder") and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = complete_checkpoint_steps(run / "train_vocoder")
    assert saved and saved[-1] < 11, "training never wrote a checkpoint, or finished before the kill"

    resumed = subprocess.run(args[:4] + args[5:], capture_output=True, text=True, env=env)  # without --quiet
    assert resumed.returncode == 0, resumed.stderr
    assert f"step {saved[-1] + 1})" in resumed.stderr and "train_vocoder: resuming" in resumed.stderr
    after = complete_checkpoint_steps(run / "train_vocoder")
    assert after[: len(saved)] == saved and after[-1] == 11 and all(s > saved[-1] for s in after[len(saved):])
    epochs = [r["epoch"] for r in csv.DictReader(open(run / "train_vocoder" / "metrics.csv"))]
    assert epochs == ["1", "2"]

    whole = copy_of(base_run, tmp_path / "whole")
    assert foley_run(whole, settings, "train_vocoder") == 0
    ours = torch.load(run / "train_vocoder" / "g_00000011", weights_only=True)["generator"]
    reference = torch.load(whole / "train_vocoder" / "g_00000011", weights_only=True)["generator"]
    for name, value in reference.items():
        torch.testing.assert_close(ours[name], value, rtol=0, atol=1e-6, msg=name)
