"""The fast sampler: each position of each layer computed once (IncrementalPixelSNAIL), batched.

It draws exactly as the reference sampler (``foley.sample.reference.sample_reference``): the same
per-clip uniforms (``clip_uniforms``) and the same code choice (``choose_codes``) on logits
equal to the reference's up to float rounding. With the same seeds it returns the same maps in
float32. With ``amp`` the model runs under bf16 autocast on its device (weights and caches held
in bf16): faster on a GPU, but the logits are bf16-rounded, so maps may differ from float32 ones.

With guidance != 1 every clip is sampled twice in one batch, under its label and under the null
label, both halves fed the same chosen codes; the guided logits are the reference's
(``guided_logits``). This doubles the batch, so it roughly doubles the cost per clip.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm import tqdm

from foley.models.incremental_pixelsnail import IncrementalPixelSNAIL
from foley.models.pixelsnail import PixelSNAIL
from foley.sample.reference import check_guidance, choose_codes, clip_uniforms, guided_logits
from foley.util.device import amp_enabled, autocast


class FastSampler:
    """Folds ``prior`` once; each call samples code maps with it (the prior itself is not changed)."""

    def __init__(self, prior: PixelSNAIL, amp: bool | str = False) -> None:
        self.prior = prior
        self.device = prior.background.device
        self.amp = amp_enabled(self.device, amp, sampling=True)
        self.model = IncrementalPixelSNAIL(prior, torch.bfloat16 if self.amp else None)

    @torch.no_grad()
    def __call__(
        self,
        labels: torch.Tensor,
        seeds: Sequence[int],
        temperature: float = 1.0,
        top_k: int = 0,
        progress: bool = False,
        batch_size: int | None = None,
        guidance: float = 1.0,
    ) -> torch.Tensor:
        """(B, H, W) code maps, clip i of class labels[i] drawn from seeds[i]; ``batch_size`` clips at a time."""
        check_guidance(self.prior, guidance)
        if len(seeds) != len(labels):
            raise ValueError(f"need one seed per label: {len(seeds)} seeds for {len(labels)} labels")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be at least 1 (or None: all clips at once), got {batch_size}")
        height, width = self.prior.map_shape
        labels = labels.to(self.device)
        self.prior.check_inputs(torch.zeros(len(labels), height, width, dtype=torch.long, device=self.device), labels)
        step = batch_size or max(1, len(labels))
        chunks = [(labels[i : i + step], list(seeds[i : i + step])) for i in range(0, len(labels), step)]
        bar = tqdm(total=len(chunks) * height * width, desc="sampling (fast)", disable=not progress, leave=False)
        with bar:
            maps = [self._sample_batch(chunk, chunk_seeds, temperature, top_k, guidance, bar)
                    for chunk, chunk_seeds in chunks]
        return torch.cat(maps) if maps else torch.zeros(0, height, width, dtype=torch.long, device=self.device)

    def _sample_batch(
        self, labels: torch.Tensor, seeds: list[int], temperature: float, top_k: int, guidance: float, bar: tqdm
    ) -> torch.Tensor:
        uniforms = clip_uniforms(seeds, self.model.positions).to(self.device)
        guided = guidance != 1
        batch = len(labels)
        with autocast(self.device, self.amp):
            self.model.begin(torch.cat([labels, self.prior.null_labels(batch)]) if guided else labels)
            for position in range(self.model.positions):
                logits = self.model.next_logits()
                if guided:
                    logits = guided_logits(logits[:batch].float(), logits[batch:].float(), guidance)
                codes = choose_codes(logits, uniforms[:, position], temperature, top_k)
                self.model.place(torch.cat([codes, codes]) if guided else codes)
                bar.update()
        return self.model.codes()[:batch]
