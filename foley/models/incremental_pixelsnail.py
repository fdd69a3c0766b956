"""PixelSNAIL evaluated one position at a time: each layer's output at each position is computed once.

``IncrementalPixelSNAIL(prior)`` folds the prior's weight norm and copies its weights. For a batch
of labels, ``begin(labels)`` computes the label-conditioning maps once and allocates the caches;
then, for every position in raster order, ``next_logits()`` returns that position's logits (B, V)
and ``place(codes)`` records the codes chosen there. The logits equal the full model's on the
finished map (``PixelSNAIL.forward``) at that position, up to float rounding.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from foley.models.incremental_layers import (
    AttentionCache,
    CausalResBlockStep,
    InputStacks,
    PointResBlock,
    as_linear,
)
from foley.models.layers import fold_weight_norm
from foley.models.pixelsnail import PixelBlock, PixelSNAIL


class BlockStep:
    """One PixelBlock at one position: causal residual blocks, then attention or a 1x1 conv."""

    def __init__(self, block: PixelBlock, dtype: torch.dtype) -> None:
        self.resblocks = [CausalResBlockStep(resblock, dtype) for resblock in block.resblocks]
        self.attention = None
        if block.attention:
            self.key = PointResBlock(block.key_resblock, dtype)
            self.query = PointResBlock(block.query_resblock, dtype)
            self.attention = AttentionCache(block.causal_attention, dtype)
            self.out = PointResBlock(block.out_resblock, dtype)
        else:
            self.out_linear = as_linear(block.out.conv, dtype)

    def begin(self, batch: int, map_shape: tuple[int, int]) -> None:
        for resblock in self.resblocks:
            resblock.begin(batch, map_shape[1])
        if self.attention is not None:
            self.attention.begin(batch, map_shape[0] * map_shape[1])

    def start_row(self, condition_row: torch.Tensor) -> None:
        for resblock in self.resblocks:
            resblock.start_row(condition_row)

    def step(self, x: torch.Tensor, col: int, position: int, background: torch.Tensor) -> torch.Tensor:
        out = x
        for resblock in self.resblocks:
            out = resblock.step(out, col)
        if self.attention is None:
            return F.linear(torch.cat([out, background], 1), *self.out_linear)
        key = self.key(torch.cat([x, out, background], 1))
        query = self.query(torch.cat([out, background], 1))
        return self.out(out, self.attention.step(query, key, position))

    def state_bytes(self) -> int:
        cached = sum(resblock.state_bytes() for resblock in self.resblocks)
        return cached + (0 if self.attention is None else self.attention.state_bytes())


class IncrementalPixelSNAIL:
    """A folded copy of a PixelSNAIL that computes the next position of a batch of maps."""

    def __init__(self, prior: PixelSNAIL, dtype: torch.dtype | None = None) -> None:
        folded = fold_weight_norm(prior).eval()
        self.model_dtype = folded.background.dtype
        self.dtype = dtype or self.model_dtype
        self.map_shape = folded.map_shape
        self.vocab_size = folded.vocab_size
        self.label_map = folded.label_map  # eval mode: labels as given, the null label included
        self.stacks = InputStacks(folded, self.dtype)
        self.blocks = [BlockStep(block, self.dtype) for block in folded.blocks]
        self.out = as_linear(folded.out[1].conv, self.dtype)
        self.background = folded.background[0].flatten(1).t().to(self.dtype)  # (H * W, 2)
        self.batch = 0
        self.position = 0
        self.pending = False

    @property
    def positions(self) -> int:
        return self.map_shape[0] * self.map_shape[1]

    @torch.no_grad()
    def begin(self, labels: torch.Tensor) -> None:
        """Start a batch of maps, one per label (B,), at position 0."""
        condition = self.label_map(labels.to(self.background.device))
        self.condition = condition.to(self.dtype)  # (B, label_channels, H, W)
        self.batch = len(labels)
        self.stacks.begin(self.batch, self.map_shape)
        for block in self.blocks:
            block.begin(self.batch, self.map_shape)
        self.position = 0
        self.pending = False

    @torch.no_grad()
    def next_logits(self) -> torch.Tensor:
        """The logits (B, vocab_size) at the next position; ``place`` its codes before asking again."""
        if self.pending or self.position >= self.positions:
            raise RuntimeError(self._order_error())
        row, col = divmod(self.position, self.map_shape[1])
        if col == 0:
            self.stacks.start_row(row)
            for block in self.blocks:
                block.start_row(self.condition[:, :, row])
        x = self.stacks.step(col)
        background = self.background[self.position].expand(self.batch, -1)
        for block in self.blocks:
            x = block.step(x, col, self.position, background)
        self.pending = True
        return F.linear(F.elu(x), *self.out)

    def place(self, codes: torch.Tensor) -> None:
        """Record the codes (B,) chosen at the position whose logits were returned last."""
        if not self.pending:
            raise RuntimeError(self._order_error())
        self.stacks.place(self.position % self.map_shape[1], codes)
        self.position += 1
        self.pending = False

    def codes(self) -> torch.Tensor:
        """The maps placed so far (B, H, W); positions not reached yet hold vocab_size."""
        pad = self.stacks.pad
        return self.stacks.codes[:, pad:, pad:-pad].clone()

    def state_bytes(self) -> int:
        """Bytes held for the current batch: caches, label maps and the padded code maps."""
        condition = self.condition.numel() * self.condition.element_size() if self.batch else 0
        return condition + self.stacks.state_bytes() + sum(block.state_bytes() for block in self.blocks)

    def _order_error(self) -> str:
        if self.position >= self.positions:
            return f"all {self.positions} positions are placed; call begin() for a new batch"
        if self.pending:
            return f"place() the codes of position {self.position} before asking for the next logits"
        return f"next_logits() for position {self.position} comes before place()"
