"""The trainers' fast path: one step equals the reference step, fused Adam, torch.compile switch,
training data on the device, TF32 scope."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import TensorDataset

from foley.config import TrainConfig, load_config
from foley.models.builders import build_autoencoder
from foley.models.pixelsnail import PixelSNAIL
from foley.train import tasks
from foley.train.batches import BatchShare
from foley.train.data import DeviceTensors, fits_on_device, training_data, whole_batch
from foley.train.loop import LoopPlan, fit
from foley.train.tasks import AutoencoderTask, PriorLoss, PriorTask, adam
from foley.util.device import tf32

CPU = torch.device("cpu")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_prior(seed: int = 0, dropout: float = 0.0) -> PixelSNAIL:
    torch.manual_seed(seed)
    return PixelSNAIL((4, 6), 9, 3, channel=16, kernel_size=5, n_block=2, n_res_block=1, res_channel=12,
                      attention=True, n_head=2, dropout=dropout, label_hidden=8)


def two_steps(task, batch: tuple[torch.Tensor, ...]) -> list[dict[str, float]]:
    """The logged losses of two steps on ``batch``: the second is computed after the first update.

    (Parameters are not compared: Adam turns a gradient that is zero in exact arithmetic - kernel
    taps that read only padding - into a step of about lr with the sign of its round-off.)"""
    torch.manual_seed(5)  # the same random draws (quantizer dropout) for both paths
    return [task.train_step(batch, BatchShare(0, len(batch[0]), len(batch[0]))) for _ in range(2)]


def assert_same_steps(fast: list[dict[str, float]], reference: list[dict[str, float]]) -> None:
    for got, want in zip(fast, reference, strict=True):
        assert got.keys() == want.keys()
        for key in want:
            assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-7), key


@pytest.mark.device
def test_a_fast_prior_task_steps_as_the_reference_task(test_device):
    generator = torch.Generator().manual_seed(1)
    codes, labels = torch.randint(0, 9, (4, 4, 6), generator=generator), torch.tensor([0, 1, 2, 0])
    steps = {}
    for fast in (False, True):
        task = PriorTask(tiny_prior().to(test_device), 1e-3, test_device, fast_path=fast)
        assert isinstance(task.loss_module, PriorLoss) and task.loss_module.fast is fast
        steps[fast] = two_steps(task, (codes, labels))
    assert_same_steps(steps[True], steps[False])


@pytest.mark.device
def test_a_fast_autoencoder_task_with_the_codec_options_steps_as_the_reference_task(test_device):
    """The autoencoder's fast path is fused Adam; quantizer dropout, bands and the balancer keep working."""
    options = ["autoencoder.quantizer.type=rvq", "autoencoder.quantizer.levels=2", "autoencoder.quantizer.dropout=0.5",
               "autoencoder.loss.mel_bands=2", "autoencoder.loss.balancer=true", "autoencoder.channel=8",
               "autoencoder.n_res_channel=4", "autoencoder.embed_dim=4", "autoencoder.quantizer.codebook_size=8",
               "autoencoder.strides=[[2, 2]]"]
    section = load_config("quick", options).autoencoder
    mels = torch.randn(3, 16, 32, generator=torch.Generator().manual_seed(2))
    steps = {}
    for fast in (False, True):
        torch.manual_seed(0)
        model = build_autoencoder(section, (16, 32)).to(test_device)
        task = AutoencoderTask(model, section.quantizer.commitment, 1e-3, test_device, loss=section.loss, fast_path=fast)
        assert task.optimizer.defaults["fused"] is (True if fast else None)
        steps[fast] = two_steps(task, (mels,))
    assert "balancer/scale_band_1" in steps[True][0]
    assert_same_steps(steps[True], steps[False])


def test_fused_adam_updates_as_torchs_default_adam():
    """Same gradients in, same parameters out (to float rounding), over three steps."""
    generator = torch.Generator().manual_seed(3)
    start = [torch.randn(5, 4, generator=generator), torch.randn(7, generator=generator)]
    gradients = [[torch.randn(p.shape, generator=generator) for p in start] for _ in range(3)]
    results = []
    for fused in (False, True):
        parameters = [torch.nn.Parameter(p.clone()) for p in start]
        optimizer = adam(parameters, 1e-2, fused)
        for step in gradients:
            for parameter, gradient in zip(parameters, step):
                parameter.grad = gradient.clone()
            optimizer.step()
        results.append(parameters)
    for default, fused in zip(*results):
        torch.testing.assert_close(fused, default, rtol=1e-6, atol=1e-7)


def test_adam_is_fused_where_torch_has_the_kernel_and_foreach_otherwise(monkeypatch):
    parameters = [torch.nn.Parameter(torch.zeros(3))]
    assert adam(parameters, 1e-3, fused=False).defaults["fused"] in (None, False)
    assert adam(parameters, 1e-3, fused=True).defaults["fused"] is True
    real = torch.optim.Adam

    def no_fused_kernel(params, **options):
        if options.get("fused"):
            raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of supported devices")
        return real(params, **options)

    monkeypatch.setattr(torch.optim, "Adam", no_fused_kernel)
    assert adam(parameters, 1e-3, fused=True).defaults["foreach"] is True


def test_the_compile_switch_compiles_the_loss_module(monkeypatch):
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda module: compiled.append(module) or module)
    PriorTask(tiny_prior(), 1e-3, CPU)
    assert compiled == []
    task = PriorTask(tiny_prior(), 1e-3, CPU, compile=True)
    assert compiled == [task.loss_module]


def test_device_tensors_give_the_same_batches_as_a_tensor_dataset(tmp_path):
    """Batches gathered whole (DataLoader.__getitems__, no collate) train exactly as per-item ones."""
    generator = torch.Generator().manual_seed(2)
    codes, labels = torch.randint(0, 9, (10, 4, 6), generator=generator), torch.randint(0, 3, (10,), generator=generator)
    states = []
    for dataset, collate in ((TensorDataset(codes, labels), None), (DeviceTensors(codes, labels), whole_batch)):
        task = PriorTask(tiny_prior(), 1e-3, CPU)
        plan = LoopPlan(train=TrainConfig(2, 4, 1e-3, 0, 0, "constant", 0), seed=5,
                        checkpoint_path=tmp_path / f"{len(states)}.pt", metrics_path=tmp_path / f"{len(states)}.csv",
                        progress=False)
        fit(task, dataset, plan, collate)
        states.append(task.model.state_dict())
    for key, value in states[0].items():
        assert torch.equal(states[1][key], value), key


def test_training_data_stays_on_the_host_off_cuda():
    data = training_data((torch.zeros(5, 2),), CPU, num_workers=0)
    assert isinstance(data.dataset, TensorDataset) and not data.pin_memory and not data.resident
    assert data.collate is None


def test_a_set_is_resident_on_a_gpu_when_it_takes_a_tenth_of_its_free_memory(monkeypatch):
    gpu = torch.device("cuda", 0)
    codes = (torch.zeros(100, dtype=torch.int64),)  # 800 bytes
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (8000, 10**9))
    assert fits_on_device(codes, gpu, num_workers=0)
    assert not fits_on_device(codes, gpu, num_workers=2)
    assert not fits_on_device(codes, CPU, num_workers=0)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (7999, 10**9))
    assert not fits_on_device(codes, gpu, num_workers=0)


def test_tf32_is_switched_for_cuda_training_and_restored():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        with tf32(CPU, True):
            assert not torch.backends.cuda.matmul.allow_tf32
        with tf32(torch.device("cuda"), True):
            assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_the_reference_and_fast_loss_modules_share_the_models_parameters():
    model = tiny_prior()
    for fast in (False, True):
        loss_module = tasks.PriorLoss(model, fast)
        assert [id(p) for p in loss_module.parameters()] == [id(p) for p in model.parameters()]
        assert set(loss_module.state_dict()) == {f"model.{key}" for key in model.state_dict()}
