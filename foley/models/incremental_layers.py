"""PixelSNAIL's layers one position at a time, keeping what later positions read.

Positions are visited in raster order. A causal k x k convolution at (r, c) reads its input on
rows r-k+1 .. r-1 (columns c-k//2 .. c+k//2) and on row r left of c. `RowCausalConv` keeps its
input for the last k rows; when a row starts, the part from the rows above is one convolution over
the whole row, and each position adds the part from its left neighbours on its own row. 1x1
layers (`PointResBlock`) keep nothing; attention keeps every earlier position's key and value
(`AttentionCache`); the input stacks gather code embeddings (`InputStacks`).

Every class takes a module of a weight-norm-folded PixelSNAIL (``fold_weight_norm``) and copies
its weights once, in the dtype the sampler computes in.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from foley.models.pixelsnail import CausalAttention, GatedResBlock, PixelSNAIL

Linear = tuple[torch.Tensor, torch.Tensor | None]


def as_linear(layer: nn.Module, dtype: torch.dtype) -> Linear:
    """(weight (out, in), bias) of a folded nn.Linear or 1x1 nn.Conv2d."""
    bias = None if layer.bias is None else layer.bias.detach().to(dtype)
    return layer.weight.detach().flatten(1).to(dtype), bias


class RowCausalConv:
    """A folded causal convolution (``CausalConv2d(..., "causal")``) for row-by-row sampling.

    Its input lives in ``inputs`` (B, k, W + 2 * (k // 2), C_in): the last k rows, zero-padded
    columns, channels last so one position's left neighbours are one contiguous slice per clip.
    """

    def __init__(self, conv: nn.Conv2d, dtype: torch.dtype) -> None:
        weight = conv.weight.detach().to(dtype)
        out_channels, self.in_channels, self.rows, cols = weight.shape
        self.half = cols // 2
        self.above_weight = weight[:, :, :-1].contiguous()
        self.bias = conv.bias.detach().to(dtype)
        # (C_out, half * C_in) in the buffer's (column, channel) order
        left = weight[:, :, -1, : self.half].permute(0, 2, 1).reshape(out_channels, -1)
        self.left_weight_t = left.t().contiguous()
        self.inputs = torch.empty(0)
        self.above = torch.empty(0)

    def begin(self, batch: int, width: int) -> None:
        shape = (batch, self.rows, width + 2 * self.half, self.in_channels)
        self.inputs = self.bias.new_zeros(shape)

    def start_row(self) -> None:
        """Drop the oldest row, open an empty current row, convolve the rows above once."""
        self.inputs = F.pad(self.inputs[:, 1:], (0, 0, 0, 0, 0, 1))
        above = F.conv2d(self.inputs[:, :-1].permute(0, 3, 1, 2), self.above_weight, self.bias)
        self.above = above[:, :, 0].transpose(1, 2).contiguous()  # (B, W, C_out)

    def step(self, x: torch.Tensor, col: int) -> torch.Tensor:
        """Store this position's input x (B, C_in); return the output at ``col`` (B, C_out)."""
        self.inputs[:, -1, col + self.half] = x
        left = self.inputs[:, -1, col : col + self.half].reshape(len(x), -1)
        return torch.addmm(self.above[:, col], left, self.left_weight_t)

    def state_bytes(self) -> int:
        return _bytes(self.inputs) + _bytes(self.above)


class CausalResBlockStep:
    """A causal GatedResBlock; its label-condition term joins the second convolution's row part."""

    def __init__(self, block: GatedResBlock, dtype: torch.dtype) -> None:
        self.conv1 = RowCausalConv(block.conv1.conv.conv, dtype)
        self.conv2 = RowCausalConv(block.conv2.conv.conv, dtype)
        self.condition = block.condition.conv.weight.detach().to(dtype).flatten(1).t()  # (C_label, C_out)

    def begin(self, batch: int, width: int) -> None:
        self.conv1.begin(batch, width)
        self.conv2.begin(batch, width)

    def start_row(self, condition_row: torch.Tensor) -> None:
        """``condition_row`` (B, C_label, W): the label's conditioning map on this row."""
        self.conv1.start_row()
        self.conv2.start_row()
        self.conv2.above += condition_row.transpose(1, 2) @ self.condition

    def step(self, x: torch.Tensor, col: int) -> torch.Tensor:
        hidden = self.conv1.step(F.elu(x), col)
        gates = self.conv2.step(F.elu(hidden), col)
        return F.glu(gates, dim=1) + x

    def state_bytes(self) -> int:
        return self.conv1.state_bytes() + self.conv2.state_bytes()


class PointResBlock:
    """A 1x1 GatedResBlock (optionally with its aux input) on (B, C) vectors."""

    def __init__(self, block: GatedResBlock, dtype: torch.dtype) -> None:
        self.conv1 = as_linear(block.conv1.conv, dtype)
        self.conv2 = as_linear(block.conv2.conv, dtype)
        self.aux = as_linear(block.aux_conv.conv, dtype) if hasattr(block, "aux_conv") else None

    def __call__(self, x: torch.Tensor, aux: torch.Tensor | None = None) -> torch.Tensor:
        """``aux`` (B, C_aux) is required when the block has an aux input and ignored otherwise."""
        hidden = F.linear(F.elu(x), *self.conv1)
        if self.aux is not None:
            hidden = hidden + F.linear(F.elu(aux), *self.aux)
        return F.glu(F.linear(F.elu(hidden), *self.conv2), dim=1) + x


class AttentionCache:
    """Causal attention for one new position over the keys and values of all earlier ones."""

    def __init__(self, attention: CausalAttention, dtype: torch.dtype) -> None:
        self.query = as_linear(attention.query, dtype)
        key_weight, key_bias = as_linear(attention.key, dtype)
        value_weight, value_bias = as_linear(attention.value, dtype)
        self.key_value = torch.cat([key_weight, value_weight]), torch.cat([key_bias, value_bias])
        self.n_head = attention.n_head
        self.width = key_weight.shape[0]
        self.head_dim = self.width // self.n_head
        self.keys = torch.empty(0)
        self.values = torch.empty(0)

    def begin(self, batch: int, positions: int) -> None:
        shape = (batch, self.n_head, positions, self.head_dim)
        self.keys = self.key_value[0].new_zeros(shape)
        self.values = self.key_value[0].new_zeros(shape)

    def step(self, query_in: torch.Tensor, key_in: torch.Tensor, position: int) -> torch.Tensor:
        """Store this position's key and value; attend from its query to positions < ``position``."""
        batch = len(key_in)
        key, value = F.linear(key_in, *self.key_value).chunk(2, dim=1)
        self.keys[:, :, position] = key.reshape(batch, self.n_head, self.head_dim)
        self.values[:, :, position] = value.reshape(batch, self.n_head, self.head_dim)
        if position == 0:
            return key_in.new_zeros(batch, self.width)
        query = F.linear(query_in, *self.query).view(batch, self.n_head, 1, self.head_dim)
        scores = query @ self.keys[:, :, :position].transpose(2, 3) / math.sqrt(self.head_dim)
        out = torch.softmax(scores, dim=3) @ self.values[:, :, :position]
        return out.reshape(batch, self.width)

    def state_bytes(self) -> int:
        return _bytes(self.keys) + _bytes(self.values)


class InputStacks:
    """The first block's input: the horizontal and vertical causal stacks over one-hot codes.

    A convolution of one-hot codes is a sum of weight columns, one per kernel tap, so each stack
    is a table lookup. ``codes`` holds the sampled map padded by k // 2 rows on top and k // 2
    columns each side with the code ``vocab_size``, whose table rows are zero. The horizontal stack
    (rows above) and the vertical stack's upper rows are gathered once per row; the vertical
    stack's current-row taps (the codes just left) once per position.
    """

    def __init__(self, prior: PixelSNAIL, dtype: torch.dtype) -> None:
        horizontal = prior.horizontal.conv.conv
        vertical = prior.vertical.conv.conv
        self.vocab_size = prior.vocab_size
        self.pad = horizontal.weight.shape[-1] // 2
        self.vertical_cols = vertical.weight.shape[-1]
        self.horizontal = _tap_table(horizontal.weight, dtype)
        self.horizontal_bias = horizontal.bias.detach().to(dtype)
        self.vertical_above = _tap_table(vertical.weight[:, :, :-1], dtype)
        self.vertical_left = _tap_table(vertical.weight[:, :, -1:], dtype)
        self.vertical_bias = vertical.bias.detach().to(dtype)
        self.horizontal_rows = horizontal.weight.shape[2]
        self.vertical_rows = vertical.weight.shape[2]
        self.codes = torch.empty(0, dtype=torch.long)
        self.row_part = torch.empty(0)

    def begin(self, batch: int, map_shape: tuple[int, int]) -> None:
        height, width = map_shape
        shape = (batch, height + self.pad, width + 2 * self.pad)
        self.codes = torch.full(shape, self.vocab_size, dtype=torch.long, device=self.horizontal.device)
        self.width = width

    def start_row(self, row: int) -> None:
        """Everything but the current row's taps, for every column of ``row``: (B, W, C)."""
        top = row + self.pad  # padded index of the current row
        horizontal = _gather(self.horizontal, self.codes[:, top - self.horizontal_rows : top], self.width)
        horizontal = horizontal + self.horizontal_bias if row > 0 else torch.zeros_like(horizontal)
        first = self.pad - self.vertical_cols  # padded column of the leftmost tap at column 0
        upper = self.codes[:, top - self.vertical_rows + 1 : top, first : first + self.width + self.vertical_cols - 1]
        vertical = _gather(self.vertical_above, upper, self.width) + self.vertical_bias
        vertical[:, 0] = 0  # the stack is shifted right: its first column is zero, bias included
        self.row_part = horizontal + vertical
        self.row = row

    def step(self, col: int) -> torch.Tensor:
        """The first block's input at (current row, ``col``): (B, C)."""
        left = self.codes[:, self.row + self.pad, col + self.pad - self.vertical_cols : col + self.pad]
        return self.row_part[:, col] + _gather(self.vertical_left, left.unsqueeze(1), 1)[:, 0]

    def place(self, col: int, codes: torch.Tensor) -> None:
        self.codes[:, self.row + self.pad, col + self.pad] = codes

    def state_bytes(self) -> int:
        return _bytes(self.codes) + _bytes(self.row_part)


def _tap_table(weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Conv weight (C, V, R, S) -> (R * S * (V + 1), C): row (tap, code), a zero row per tap for code V."""
    channels, vocab, rows, cols = weight.shape
    table = weight.detach().to(dtype).permute(2, 3, 1, 0).reshape(rows * cols, vocab, channels)
    return F.pad(table, (0, 0, 0, 1)).reshape(-1, channels)


def _gather(table: torch.Tensor, window: torch.Tensor, width: int) -> torch.Tensor:
    """Sum over taps of the table rows of the codes in ``window`` (B, R, width + S - 1) -> (B, width, C)."""
    batch, rows, padded = window.shape
    cols = padded - width + 1
    codes_per_tap = table.shape[0] // (rows * cols)
    taps = window.unfold(2, cols, 1).permute(0, 2, 1, 3).reshape(batch, width, rows * cols)
    offsets = torch.arange(rows * cols, device=window.device) * codes_per_tap
    return F.embedding(taps + offsets, table).sum(2)


def _bytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()
