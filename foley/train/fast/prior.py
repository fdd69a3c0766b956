"""PixelSNAIL's training forward, channels last: the reference's function with fewer operations.

``fast_logits(model, codes, labels)`` equals ``model(codes, labels)`` (moved to channels last)
and reads every weight from ``model``'s own modules, so training through it updates the same
parameters (same state dict, same checkpoints). What differs is only how it is computed:

- the input stacks are convolutions of a one-hot map: each output is the sum of one weight
  column per kernel tap, so they are gathered (``embedding_bag``) instead of convolved over 512
  mostly-zero channels;
- the causal k x k convolutions run as Winograd convolutions on the CPU (``winograd``: 4 x 4
  tiles, about 6x fewer multiply-adds than the masked direct convolution, which also reads the
  three masked taps), as cuDNN convolutions on a GPU, and as oneDNN's direct bf16 convolutions
  on the CPU under bf16 autocast (config ``amp``; faster there than float32 Winograd);
- 1 x 1 convolutions are matrix products on channels-last maps (no layout changes between
  layers); attention is fused or chunked (``attention``); weight norm is computed once per
  layer and forward, as in the reference.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from foley.models.layers import CausalConv2d, WNConv2d
from foley.models.pixelsnail import CausalAttention, GatedResBlock, PixelBlock, PixelSNAIL
from foley.train.fast.attention import dropout, strictly_causal_attention
from foley.train.fast.winograd import tile_size, winograd_conv2d

CONV_BACKENDS = ("auto", "winograd", "direct")


def fast_logits(model: PixelSNAIL, codes: torch.Tensor, labels: torch.Tensor, conv: str = "auto") -> torch.Tensor:
    """``model(codes, labels)`` as (B, h, W, vocab) logits, channels last; ``conv``: how causal
    convolutions run (auto: Winograd on the CPU in float32, direct under autocast and elsewhere)."""
    if conv not in CONV_BACKENDS:
        raise ValueError(f"conv '{conv}' is not one of {', '.join(CONV_BACKENDS)}")
    model.check_inputs(codes, labels)
    batch, height, _ = codes.shape
    if conv == "auto":
        cpu = codes.device.type == "cpu"
        conv = "winograd" if cpu and not torch.is_autocast_enabled("cpu") else "direct"
    layers = _Layers(model.training, conv)
    out = input_stacks(model, codes)
    background = model.background[:, :, :height].permute(0, 2, 3, 1).expand(batch, -1, -1, -1)
    condition = model.label_map(labels)[:, :, :height].permute(0, 2, 3, 1)
    for block in model.blocks:
        out = layers.pixel_block(block, out, background, condition)
    return layers.pointwise(model.out[1], F.elu(out))


def fast_loss_and_accuracy(model: PixelSNAIL, codes: torch.Tensor, labels: torch.Tensor,
                           conv: str = "auto") -> dict[str, torch.Tensor]:
    """``loss_and_accuracy`` of the reference, through ``fast_logits``."""
    logits = fast_logits(model, codes, labels, conv)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), codes.reshape(-1))
    accuracy = (logits.detach().argmax(dim=-1) == codes).float().mean()
    return {"loss": loss, "accuracy": accuracy}


def input_stacks(model: PixelSNAIL, codes: torch.Tensor) -> torch.Tensor:
    """``model.input_stacks(codes)`` channels last (B, h, W, channel), as a sum of gathered taps.

    The horizontal stack at (r, c) reads rows r-kh .. r-1 (columns c-kw//2 .. c+kw//2), the vertical
    one rows r-kh+1 .. r (columns c-kw .. c-1); positions outside the map read nothing (the
    reference's zero padding and shifts), and each stack's bias is added where it reads any row
    (horizontal: r >= 1) or column (vertical: c >= 1).
    """
    batch, height, width = codes.shape
    stacks = ((model.horizontal, -1, True), (model.vertical, 0, False))
    tables, taps = [], []
    for layer, last_row, centred in stacks:
        weight = layer.conv.conv.weight()  # (channel, vocab, kh, kw)
        kh, kw = weight.shape[2:]
        first_col = -(kw // 2) if centred else -kw
        offset = len(taps) * (model.vocab_size + 1)
        tables.append(_tap_table(weight))
        taps += [(last_row - kh + 1 + i, first_col + j, offset + (i * kw + j) * (model.vocab_size + 1))
                 for i in range(kh) for j in range(kw)]
    indices = _shifted_codes(codes, model.vocab_size, taps)
    out = F.embedding_bag(indices.view(-1, len(taps)), torch.cat(tables), mode="sum").view(batch, height, width, -1)
    rows = torch.arange(height, device=codes.device).view(height, 1, 1) >= 1
    cols = torch.arange(width, device=codes.device).view(1, width, 1) >= 1
    return out + rows * model.horizontal.conv.conv.bias + cols * model.vertical.conv.conv.bias


def _tap_table(weight: torch.Tensor) -> torch.Tensor:
    """(kh * kw * (vocab + 1), channel): each tap's weight column per code, then a zero row (outside)."""
    channel, _, kh, kw = weight.shape
    table = weight.permute(2, 3, 1, 0)
    return torch.cat([table, table.new_zeros(kh, kw, 1, channel)], dim=2).reshape(-1, channel)


def _shifted_codes(codes: torch.Tensor, vocab_size: int, taps: list[tuple[int, int, int]]) -> torch.Tensor:
    """(B, h, W, taps) table rows: tap (dr, dc, offset) at (r, c) reads code (r + dr, c + dc),
    or the zero row ``vocab_size`` outside the map, plus ``offset``."""
    _, height, width = codes.shape
    reach = max(max(abs(dr), abs(dc)) for dr, dc, _ in taps)
    padded = F.pad(codes, (reach, reach, reach, reach), value=vocab_size)
    shifted = [padded[:, reach + dr : reach + dr + height, reach + dc : reach + dc + width] + offset for dr, dc, offset in taps]
    return torch.stack(shifted, dim=-1)


class _Layers:
    """The reference's layers on channels-last maps, in training or eval mode."""

    def __init__(self, training: bool, conv: str) -> None:
        self.training, self.conv = training, conv

    def pixel_block(self, block: PixelBlock, x: torch.Tensor, background: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        out = x
        for resblock in block.resblocks:
            out = self.gated(resblock, out, condition=condition, causal=True)
        if not block.attention:
            return self.pointwise(block.out, torch.cat([out, background], -1))
        key = self.gated(block.key_resblock, torch.cat([x, out, background], -1))
        query = self.gated(block.query_resblock, torch.cat([out, background], -1))
        return self.gated(block.out_resblock, out, aux=attention(block.causal_attention, query, key, self.training))

    def gated(self, block: GatedResBlock, x: torch.Tensor, aux: torch.Tensor | None = None,
              condition: torch.Tensor | None = None, causal: bool = False) -> torch.Tensor:
        conv = self.causal_conv if causal else self.pointwise
        hidden = conv(block.conv1, F.elu(x))
        if aux is not None:
            hidden = hidden + self.pointwise(block.aux_conv, F.elu(aux))
        gates = conv(block.conv2, dropout(F.elu(hidden), block.dropout.p, self.training))
        if condition is not None:
            gates = gates + self.pointwise(block.condition, condition)
        return F.glu(gates, dim=-1) + x

    def causal_conv(self, layer: CausalConv2d, x: torch.Tensor) -> torch.Tensor:
        conv = layer.conv.conv
        kh, kw = conv.kernel_size
        if self.conv == "winograd" and tile_size(kh) and tile_size(kw):
            padding = (kh - 1, 0, kw // 2, kw // 2)
            return winograd_conv2d(x, conv.weight_v, conv.weight_g, conv.kernel_mask, padding, conv.bias)
        weight = conv.weight()
        nchw = F.pad(x.permute(0, 3, 1, 2), (kw // 2, kw // 2, kh - 1, 0))
        return F.conv2d(nchw, weight, conv.bias).permute(0, 2, 3, 1)

    @staticmethod
    def pointwise(layer: WNConv2d, x: torch.Tensor) -> torch.Tensor:
        conv = layer.conv
        return F.linear(x, conv.weight().flatten(1), conv.bias)


def attention(layer: CausalAttention, query: torch.Tensor, key: torch.Tensor, training: bool) -> torch.Tensor:
    """``layer(query, key)`` on channels-last maps (B, h, W, C): fused or chunked attention, with
    the layer's dropout on the weights in training."""
    batch, height, width, _ = query.shape
    query, key = query.reshape(batch, height * width, -1), key.reshape(batch, height * width, -1)
    heads = [
        F.linear(x, projection.weight(), projection.bias).view(batch, height * width, layer.n_head, -1).transpose(1, 2)
        for projection, x in ((layer.query, query), (layer.key, key), (layer.value, key))
    ]
    out = strictly_causal_attention(*heads, layer.dropout.p if training else 0.0)
    return out.transpose(1, 2).reshape(batch, height, width, -1)
