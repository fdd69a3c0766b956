"""Data-parallel training on 2 CPU processes (gloo) equals one process with the same global batch.

One module fixture starts the two processes once; each trains a tiny RVQ autoencoder (EMA
codebooks, data init, dead-code restarts), another with every codec option (k-means init,
quantizer dropout, mel bands, loss balancer), a tiny prior, a toy HiFi-GAN, and a linear model
with dropout, whole and then again interrupted by SIGTERM on one rank and resumed. The tests
compare what the ranks saved with one process.
"""

import csv
import dataclasses
import os
import signal
import socket

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import TensorDataset
from toy_hifigan import TOY_HIFIGAN

from foley.config import TrainConfig, load_config
from foley.models.builders import build_autoencoder, build_prior
from foley.models.hifigan import HiFiGANConfig
from foley.models.normed_conv import norm_except_dim0
from foley.quantize.ema import EMACodebook
from foley.train.batches import share_of
from foley.train.loop import LoopPlan, fit
from foley.train.tasks import AdamTask, AutoencoderTask, PriorTask
from foley.util import distributed
from foley.util.checkpoint import checkpoint_header, load_checkpoint
from foley.util.errors import Interrupted
from foley.vocoders.hifigan_files import complete_checkpoint_steps
from foley.vocoders.hifigan_task import HiFiGANTask
from foley.vocoders.hifigan_training import build_models, peak_normalize

CPU = torch.device("cpu")
EXAMPLES = 11  # batches of 4, 4, 3: the last splits 2 + 1 over the ranks
SETTINGS = [
    "autoencoder.channel=8", "autoencoder.n_res_block=1", "autoencoder.n_res_channel=4", "autoencoder.embed_dim=8",
    "autoencoder.strides=[[2, 2], [2, 2]]", "autoencoder.quantizer.type=rvq", "autoencoder.quantizer.levels=2",
    "autoencoder.quantizer.codebook_size=16", "autoencoder.quantizer.init=data",
    "autoencoder.quantizer.dead_code_threshold=1.0",
    "prior.channel=16", "prior.res_channel=16", "prior.n_block=1", "prior.n_res_block=1", "prior.n_head=2",
    "prior.label_hidden=8", "prior.dropout=0.0", "prior.label_dropout=0.0",
]
TRAIN = ["epochs=2", "batch_size=4", "lr=0.001", "checkpoint_every=2"]
STOP_AT = 3  # rank 1 signals itself during step 4 (index 3)


def _config():
    return load_config("quick", SETTINGS + [f"{m}.train.{t}" for m in ("autoencoder", "prior") for t in TRAIN])


def _plan(folder, train, kind):
    return LoopPlan(train=train, seed=3, checkpoint_path=folder / "checkpoint.pt", metrics_path=folder / "metrics.csv",
                    checkpoint_header=checkpoint_header(kind, {}), name=kind, progress=False)


CODEC_OPTIONS = [
    "autoencoder.quantizer.levels=3", "autoencoder.quantizer.init=kmeans", "autoencoder.quantizer.dropout=0.5",
    "autoencoder.loss.mel_bands=4", "autoencoder.loss.band_weights=[1, 2, 3, 4]", "autoencoder.loss.balancer=true",
]


def train_autoencoder(folder, options=()):
    section = load_config("quick", SETTINGS + [f"autoencoder.train.{t}" for t in TRAIN] + list(options)).autoencoder
    mels = torch.randn(EXAMPLES, 16, 32, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    model = build_autoencoder(section, (16, 32))
    task = AutoencoderTask(model, section.quantizer.commitment, section.train.lr, CPU, val_mels=mels[:5], val_batch_size=2,
                           loss=section.loss)
    fit(task, TensorDataset(mels), _plan(folder, section.train, "autoencoder"))
    return model.state_dict()


def train_codec_options(folder):
    return train_autoencoder(folder, CODEC_OPTIONS)


def train_prior(folder):
    section = _config().prior
    generator = torch.Generator().manual_seed(2)
    codes = torch.randint(0, 16, (EXAMPLES, 8, 8), generator=generator)
    labels = torch.randint(0, 7, (EXAMPLES,), generator=generator)
    torch.manual_seed(0)
    model = build_prior(section, (8, 8), 16, 7)
    task = PriorTask(model, section.train.lr, CPU, val_set=(codes[:5], labels[:5]), val_batch_size=2)
    fit(task, TensorDataset(codes, labels), _plan(folder, section.train, "prior"))
    return model.state_dict()


def train_vocoder(folder):
    """A toy HiFi-GAN on 7 clips in batches of 4 and 3 (one epoch), validated on 3 clips."""
    clips = peak_normalize(torch.randn(7, 4096, generator=torch.Generator().manual_seed(4)))
    torch.manual_seed(0)
    models = build_models(HiFiGANConfig.from_dict(TOY_HIFIGAN), channel_divisor=8)
    task = HiFiGANTask(models, CPU, seed=5, val_clips=clips[:3], epochs=1, validate_every=1, keep_checkpoints=2)
    train = TrainConfig(1, 4, 1e-3, 0, 0, "constant", 0)
    plan = dataclasses.replace(_plan(folder, train, "vocoder"), checkpoint_path=folder / "pairs")
    fit(task, list(clips), plan)
    return {f"{name}.{key}": value for name in ("generator", "mpd", "msd")
            for key, value in getattr(models, name).state_dict().items()}


TRAINERS = [("autoencoder", train_autoencoder), ("codec_options", train_codec_options), ("prior", train_prior),
            ("vocoder", train_vocoder)]


KMEANS_VECTORS = torch.randn(37, 4, generator=torch.Generator().manual_seed(6)) * 3


def kmeans_codebook(seed):
    """A k-means-initialised codebook after one training step on this rank's slice of 37 vectors
    (19 and 18 on two ranks), each rank's RNG seeded differently."""
    share = share_of(len(KMEANS_VECTORS), distributed.rank(), distributed.world_size())
    torch.manual_seed(seed + distributed.rank())
    book = EMACodebook(dim=4, size=8, init="kmeans").train()
    book(KMEANS_VECTORS[share.first : share.first + share.count])
    return book.state_dict()


class LinearTask(AdamTask):
    """A linear model with dropout; rank 1 sends itself SIGTERM during step `signal_at`."""

    def __init__(self, signal_at=None):
        torch.manual_seed(0)
        super().__init__(nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.3), nn.Linear(8, 1)), 1e-2, CPU)
        self.steps, self.signal_at = 0, signal_at

    def losses(self, batch, network):
        x, y = batch
        return {"loss": ((network(x) - y) ** 2).mean()}

    def train_step(self, batch, share):
        if self.steps == self.signal_at and distributed.rank() == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        self.steps += 1
        return super().train_step(batch, share)


def train_linear(folder, signal_at=None):
    x = torch.randn(37, 3, generator=torch.Generator().manual_seed(0))
    task = LinearTask(signal_at)
    plan = _plan(folder, TrainConfig(2, 5, 1e-2, 0, 0, "constant", 0), "linear")
    fit(task, TensorDataset(x, x.sum(1, keepdim=True)), plan)
    return task.model


def _worker(rank, world, port, folder):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    distributed.start(rank, world, rank, CPU)
    try:
        torch.save(kmeans_codebook(seed=5), folder / "kmeans" / f"rank{rank}.pt")
        for name, train in TRAINERS:
            torch.save(train(folder / name), folder / name / f"rank{rank}.pt")
        torch.save(train_linear(folder / "whole").state_dict(), folder / "whole" / f"rank{rank}.pt")
        try:
            train_linear(folder / "linear", signal_at=STOP_AT)
        except Interrupted as err:
            (folder / "linear" / f"stopped{rank}.txt").write_text(f"{err.exit_code} {err}")
        torch.save(train_linear(folder / "linear").state_dict(), folder / "linear" / f"rank{rank}.pt")
    finally:
        distributed.stop()


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    for name in [name for name, _ in TRAINERS] + ["linear", "whole", "kmeans"]:
        (folder / name).mkdir()
    mp.spawn(_worker, args=(2, _free_port(), folder), nprocs=2)
    return folder


def test_kmeans_init_is_identical_on_two_ranks_and_equals_one_process_on_the_whole_batch(two_ranks, one_torch_thread):
    ranks = [torch.load(two_ranks / "kmeans" / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    single = kmeans_codebook(seed=5)  # one process: the whole batch, rank 0's seed
    for key in single:
        assert torch.equal(ranks[0][key], ranks[1][key]), key
        torch.testing.assert_close(ranks[0][key], single[key], rtol=1e-5, atol=1e-5, msg=key)
    assert single["cluster_size"].sum() > 30  # k-means counts of the 37 vectors, then one EMA step


def _as_used(state):
    """The state with each weight-norm direction v replaced by the weight it gives, g * v / |v|: for a
    norm group of one element (the prior's 1-channel condition convs) v's true gradient is zero,
    and Adam turns the float residue into steps that change v but not the weight."""
    used = dict(state)
    for key in [k for k in state if k.endswith("weight_v") and k[:-1] + "g" in state]:
        used[key] = state[key[:-1] + "g"] * state[key] / norm_except_dim0(state[key])
    return used


def _metrics(path):
    return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(open(path))]


@pytest.mark.parametrize("name, train", TRAINERS)
def test_two_processes_train_like_one_with_the_same_global_batch(two_ranks, tmp_path, one_torch_thread, name, train):
    ranks = [torch.load(two_ranks / name / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    single = train(tmp_path)
    assert list(ranks[0]) == list(single)
    if name in ("autoencoder", "codec_options"):
        assert any(".embed" in key for key in single) and any("cluster_size" in key for key in single)
    for key in single:
        assert torch.equal(ranks[0][key], ranks[1][key]), f"{key} differs between ranks"
    states, tolerance = [ranks[0]], 1e-5
    if name == "vocoder":
        # Its gradients agree to ~1e-7 relative, but many weight-norm elements have gradients near
        # 1e-10, below Adam's eps, where float noise moves them by a few 1e-5 (lr 1e-3 per step).
        tolerance = 1e-4
        assert complete_checkpoint_steps(two_ranks / name / "pairs") == [1]  # 2 steps; written by rank 0
    else:
        if name == "prior":
            # The fast path's Winograd products round differently for a rank's half batch than for
            # the whole one (a few 1e-7 relative); Adam turns that noise in the small gradients of
            # taps that reach the 8 x 8 map's corners into up to ~1.5e-5 after 6 steps.
            tolerance = 3e-5
        saved = load_checkpoint(two_ranks / name / "checkpoint.pt")
        assert saved["step"] == 6 and len(saved["rng"]) == 2  # 3 global batches x 2 epochs; both ranks' RNG
        states.append(saved["task"]["model"])
    for state in states:
        for key, value in _as_used(single).items():
            torch.testing.assert_close(_as_used(state)[key].float(), value.float(), atol=tolerance, rtol=tolerance, msg=key)
    ours, theirs = _metrics(two_ranks / name / "metrics.csv"), _metrics(tmp_path / "metrics.csv")
    assert len(ours) == len(theirs) >= 1 and any(key.startswith("val/") for key in ours[0])
    for mine, one in zip(ours, theirs):
        assert mine == pytest.approx(one, rel=1e-4, abs=1e-6)  # global means, validation pooled over ranks


def test_a_signal_on_one_rank_stops_both_after_the_same_step_and_they_resume_exactly(two_ranks):
    for rank in (0, 1):
        message = (two_ranks / "linear" / f"stopped{rank}.txt").read_text()
        checkpoint = two_ranks / "linear" / "checkpoint.pt"
        assert message == f"143 linear stopped by SIGTERM after step {STOP_AT + 1}; checkpoint written to '{checkpoint}'"
    # Dropout draws differ per rank (slices of 3 and 2), so resuming exactly needs each rank's own RNG state.
    resumed = [torch.load(two_ranks / "linear" / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    whole = [torch.load(two_ranks / "whole" / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for key in whole[0]:
        assert torch.equal(resumed[0][key], resumed[1][key]) and torch.equal(resumed[0][key], whole[0][key]), key
    assert load_checkpoint(two_ranks / "linear" / "checkpoint.pt")["step"] == 16
