import os

import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest runs one worker process per core (pyproject: -n auto): each worker, and every process a test
    # starts, computes on one thread, so the workers never fight over cores (two threads per process on
    # two busy cores spin-wait and run small tensor ops 10x slower)
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

# A pipeline small enough for a test: every stage runs, on a tiny synthetic set, in seconds.
TOY = [
    "amp=false",
    "data.synthetic.train_per_class=4",
    "data.synthetic.reference_per_class=3",
    "data.val_fraction=0.25",
    "autoencoder.channel=8",
    "autoencoder.n_res_block=1",
    "autoencoder.n_res_channel=4",
    "autoencoder.embed_dim=8",
    "autoencoder.strides=[[4, 4], [4, 4]]",
    "autoencoder.quantizer.type=rvq",
    "autoencoder.quantizer.levels=2",
    "autoencoder.quantizer.codebook_size=16",
    "autoencoder.train.epochs=2",
    "autoencoder.train.steps=0",
    "autoencoder.train.batch_size=8",
    "prior.channel=16",
    "prior.res_channel=16",
    "prior.n_block=1",
    "prior.n_res_block=1",
    "prior.n_head=2",
    "prior.label_hidden=8",
    "prior.train.epochs=2",
    "prior.train.steps=0",
    "prior.label_dropout=0.0",
    "prior.train.batch_size=8",
    "sample.per_class=2",
    "sample.batch_size=7",
    "sample.guidance=1.0",
    "vocoder.griffinlim.n_iter=2",
    "evaluate.batch_size=8",
    "evaluate.relax_checks=true",
    "evaluate.floor_clips_per_class=2",
    "evaluate.classifier_min_steps=20",
]


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory):
    """One finished toy run (every stage), shared by the tests that read a run folder."""
    from foley.stages.commands.cli import main

    run = tmp_path_factory.mktemp("runs") / "toy"
    assert main(["run", "--quiet", "--out", str(run), *[a for o in TOY for a in ("--set", o)]]) == 0
    return run


@pytest.fixture
def toy_overrides():
    return list(TOY)


@pytest.fixture
def one_torch_thread():
    """One torch thread: on a few shared cores, several threads per process spin and slow tests 10x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def test_device():
    """The device of the tests marked `device`: FOLEY_TEST_DEVICE (cpu unless set; `foley gpu-check`
    sets cuda), with TF32 off while the test runs so that float32 comparisons keep their tolerances."""
    device = torch.device(os.environ.get("FOLEY_TEST_DEVICE", "cpu"))
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield device
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
