"""Training tasks for the shared loop (`foley.train.loop.fit`): one per trained model.

A task turns a batch into named losses; the loop does the rest. Each task also validates on a
held-out tensor set at the end of an epoch when one is given. With several processes the model
trains inside DistributedDataParallel (`network`) while checkpoints hold the module itself
(`model`); validation splits the held-out set over the ranks and pools their sums.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from foley.config import LossConfig
from foley.models.autoencoder import Autoencoder, autoencoder_loss, named_losses
from foley.models.band_loss import MelBands
from foley.models.pixelsnail import PixelSNAIL, loss_and_accuracy
from foley.quantize.ema import usage_from_counts
from foley.train.balancer import LossBalancer
from foley.train.batches import BatchShare, share_of
from foley.train.fast.prior import fast_loss_and_accuracy
from foley.util import distributed
from foley.util.device import amp_enabled, autocast


class AdamTask:
    """A model trained by Adam on the "loss" entry of `losses(batch, network)`; `lr_factor(step)`
    (foley.train.schedule), when given, scales the learning rate at each step.

    `network` runs `loss_module` (the model itself unless a subclass computes its losses in a
    module of its own), inside DistributedDataParallel with several processes and compiled by
    torch.compile when asked. `fused`: Adam's fused kernel (or its foreach form where torch has no
    fused one for the device): the same update in fewer passes over the parameters.
    """

    def __init__(self, model: nn.Module, lr: float, device: torch.device, amp: bool | str = False,
                 lr_factor: Callable[[int], float] | None = None, *,
                 loss_module: nn.Module | None = None, fused: bool = False, compile: bool = False):
        self.model, self.device = model, device
        self.loss_module = model if loss_module is None else loss_module
        self.network = distributed.wrap(self.loss_module, device)
        if compile:
            self.network = torch.compile(self.network)
        self.optimizer = adam(list(model.parameters()), lr, fused)
        self.scheduler = None if lr_factor is None else torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_factor)
        self.amp = amp_enabled(device, amp)  # bf16 autocast where the device computes bf16 natively

    def losses(self, batch: tuple[torch.Tensor, ...], network: nn.Module) -> dict[str, torch.Tensor]:
        raise TypeError(f"{type(self).__name__} must define losses()")

    def train_step(self, batch: tuple[torch.Tensor, ...], share: BatchShare) -> dict[str, float]:
        self.network.train()
        batch = tuple(t.to(self.device, non_blocking=True) for t in batch)
        with autocast(self.device, self.amp):
            losses = self.losses(batch, self.network)
        self.optimizer.zero_grad(set_to_none=True)
        (losses["loss"] * share.gradient_scale).backward()
        self.step_optimizer()
        return {key: float(value.detach()) for key, value in losses.items()}

    def step_optimizer(self) -> None:
        """One Adam step, then the learning-rate schedule's."""
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()

    def end_epoch(self, epoch: int) -> dict[str, float]:
        return {}

    @torch.no_grad()
    def validate(self, tensors: tuple[torch.Tensor, ...], batch_size: int) -> dict[str, float]:
        """Mean losses over a held-out set in eval mode (EMA codebooks untouched), prefixed val/."""
        self.model.eval()
        share = share_of(tensors[0].shape[0], distributed.rank(), distributed.world_size())
        end = share.first + share.count
        totals: dict[str, float] = {}
        for first in range(share.first, end, batch_size):
            batch = tuple(t[first : min(first + batch_size, end)].to(self.device) for t in tensors)
            with autocast(self.device, self.amp):
                losses = self.losses(batch, self.loss_module)
            for key, value in losses.items():
                totals[key] = totals.get(key, 0.0) + float(value) * batch[0].shape[0]
        return {f"val/{key}": value / share.total for key, value in distributed.summed_dicts(totals).items()}

    def state_dict(self) -> dict[str, Any]:
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}
        if self.scheduler is not None:
            state["scheduler"] = self.scheduler.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])


class AutoencoderTask(AdamTask):
    """Reconstruction + beta * commitment (`named_losses`); logs each level's codebook perplexity and
    unused codes per epoch. `loss` (autoencoder.loss; None = the plain MSE) adds the band-weighted
    MSE and EnCodec's balancer: then the bands' losses reach the decoder output as the balancer's
    gradient, and the commitment, which does not depend on that output, is added unbalanced."""

    def __init__(self, model: Autoencoder, commitment_weight: float, lr: float, device: torch.device,
                 amp: bool | str = False, val_mels: torch.Tensor | None = None, val_batch_size: int = 16,
                 loss: LossConfig | None = None, lr_factor: Callable[[int], float] | None = None,
                 fast_path: bool = True, compile: bool = False):
        super().__init__(model, lr, device, amp, lr_factor, fused=fast_path, compile=compile)
        self.commitment_weight = commitment_weight
        self.val_mels, self.val_batch_size = val_mels, val_batch_size
        self.counts = torch.zeros(model.levels, model.quantizer.size, dtype=torch.long)
        self.bands = band_setup(loss, model.input_shape[0])
        self.balancer = None
        if loss is not None and loss.balancer:
            weights = ({f"recon/band_{i}": w for i, w in enumerate(self.bands.weights)} if self.bands
                       else {"recon/mse": 1.0})
            self.balancer = LossBalancer(weights, loss.balancer_total_norm, loss.balancer_decay)

    def losses(self, batch: tuple[torch.Tensor, ...], network: nn.Module) -> dict[str, torch.Tensor]:
        losses, codes = autoencoder_loss(network, batch[0], self.commitment_weight, self.bands)
        if network.training:
            self._count(codes)
        return losses

    def _count(self, codes: torch.Tensor) -> None:
        for level in range(codes.shape[1]):
            self.counts[level] += torch.bincount(codes[:, level].reshape(-1).cpu(), minlength=self.counts.shape[1])

    def train_step(self, batch: tuple[torch.Tensor, ...], share: BatchShare) -> dict[str, float]:
        if self.balancer is None:
            return super().train_step(batch, share)
        self.network.train()
        mel = batch[0].to(self.device, non_blocking=True)
        with autocast(self.device, self.amp):
            recon, result = self.network(mel)
        self._count(result.codes)
        output = recon.float()
        probe = output.detach().requires_grad_()
        losses = named_losses(probe, mel, result.commitment, self.commitment_weight, self.bands)
        gradient, scales = self.balancer.output_gradient(losses, probe, share)
        self.optimizer.zero_grad(set_to_none=True)
        commitment = result.commitment * (self.commitment_weight * share.gradient_scale)
        torch.autograd.backward([output, commitment], [gradient * share.gradient_scale, torch.ones_like(commitment)])
        self.step_optimizer()
        logged = {key: float(value.detach()) for key, value in losses.items()}
        return {**logged, **{f"balancer/scale_{name.split('/')[-1]}": s for name, s in scales.items()}}

    def end_epoch(self, epoch: int) -> dict[str, float]:
        usage = usage_from_counts(distributed.summed(self.counts))
        metrics = {}
        for level in range(self.counts.shape[0]):
            metrics[f"vq/perplexity_l{level}"] = float(usage["perplexity"][level])
            metrics[f"vq/unused_l{level}"] = float(usage["unused"][level])
        self.counts.zero_()
        if self.val_mels is not None and len(self.val_mels):
            metrics.update(self.validate((self.val_mels,), self.val_batch_size))
        return metrics

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        return state if self.balancer is None else {**state, "balancer": self.balancer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if self.balancer is not None and "balancer" in state:
            self.balancer.load_state_dict(state["balancer"])


def band_setup(loss: LossConfig | None, n_mels: int) -> MelBands | None:
    """The mel bands of autoencoder.loss, or None for the plain MSE (no section, or one band)."""
    if loss is None or loss.mel_bands == 1:
        return None
    return MelBands.equal(n_mels, loss.mel_bands, loss.band_weights)


class PriorLoss(nn.Module):
    """The prior's loss and accuracy on (codes, labels) as a module (what DDP and torch.compile
    wrap); its only parameters are the model's. ``fast``: through ``foley.train.fast.prior``."""

    def __init__(self, model: PixelSNAIL, fast: bool) -> None:
        super().__init__()
        self.model, self.fast = model, fast

    def forward(self, codes: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.fast:
            return fast_loss_and_accuracy(self.model, codes, labels)
        return loss_and_accuracy(self.model, codes, labels)


class PriorTask(AdamTask):
    """Cross-entropy over the code map; logs loss and accuracy (train and validation).
    ``fast_path``: the fast training forward and fused Adam (equal to the reference up to rounding)."""

    def __init__(self, model: PixelSNAIL, lr: float, device: torch.device, amp: bool | str = False,
                 val_set: tuple[torch.Tensor, torch.Tensor] | None = None, val_batch_size: int = 16,
                 lr_factor: Callable[[int], float] | None = None, fast_path: bool = True, compile: bool = False):
        super().__init__(model, lr, device, amp, lr_factor, loss_module=PriorLoss(model, fast_path), fused=fast_path,
                         compile=compile)
        self.val_set, self.val_batch_size = val_set, val_batch_size

    def losses(self, batch: tuple[torch.Tensor, ...], network: nn.Module) -> dict[str, torch.Tensor]:
        codes, labels = batch
        return network(codes, labels)

    def end_epoch(self, epoch: int) -> dict[str, float]:
        if self.val_set is not None and len(self.val_set[0]):
            return self.validate(self.val_set, self.val_batch_size)
        return {}


def adam(parameters: list[nn.Parameter], lr: float, fused: bool) -> torch.optim.Adam:
    """torch's Adam; with ``fused``, its fused kernel, or the foreach one where torch has no fused
    kernel for the parameters' device (torch < 2.4 on the CPU)."""
    if not fused:
        return torch.optim.Adam(parameters, lr=lr)
    try:
        return torch.optim.Adam(parameters, lr=lr, fused=True)
    except RuntimeError:
        return torch.optim.Adam(parameters, lr=lr, foreach=True)
