"""Class-conditional PixelSNAIL over a 2-D map of codes (the DCASE 2023 Task 7 baseline's prior).

The model predicts, for every position of a code map in raster order, a distribution over the
vocabulary given the codes at earlier positions and the clip's class label:

- two causal input stacks over the one-hot codes: ``horizontal`` sees the rows above, ``vertical``
  the positions to the left in the current and upper rows; their sum enters the first block;
- ``n_block`` pixel blocks: gated residual blocks with causal convolutions (the label's learned
  conditioning map, of ``label_channels`` channels (the baseline: 1), added in each), then causal
  multi-head attention over all earlier positions with the coordinate ``background`` as extra input
  (or, without attention, a 1x1 convolution);
- ELU and a 1x1 convolution to vocabulary logits.

Classifier-free guidance: a prior built with ``label_dropout`` > 0 has one more label, the learned
null label (``null_label`` = n_classes, an extra input of the label network). In training mode
``label_map`` replaces each label by it with probability ``label_dropout``; a sampler then guides
with the logits of the null label (``foley.sample.reference.guided_logits``). With
``label_dropout`` 0 the model, its state dict and its training are the baseline's (no null label,
no random draws).

Module and parameter names follow the baseline so that its checkpoints load
(``load_baseline_state_dict``); the baseline's unused ``cond_resnet`` is not built.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from foley.models.layers import CausalConv2d, WeightNormLinear, WNConv2d
from foley.util.errors import CheckpointError


def shift_down(x: torch.Tensor) -> torch.Tensor:
    """Move every row one down (zeros enter at the top), keeping the height."""
    return F.pad(x, (0, 0, 1, 0))[:, :, : x.shape[2]]


def shift_right(x: torch.Tensor) -> torch.Tensor:
    """Move every column one right (zeros enter at the left), keeping the width."""
    return F.pad(x, (1, 0, 0, 0))[:, :, :, : x.shape[3]]


class GatedResBlock(nn.Module):
    """x + GLU(conv2(dropout(ELU(conv1(ELU(x)) [+ aux_conv(ELU(aux))]))) [+ condition(map)]).

    Causal blocks use ``causal`` convolutions of ``kernel_size``; the others are 1x1.
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        kernel_size: int,
        causal: bool,
        dropout: float,
        aux_channels: int = 0,
        condition_channels: int = 0,
    ) -> None:
        super().__init__()
        if causal:
            kernel = (kernel_size, kernel_size)
            self.conv1 = CausalConv2d(in_channels, channels, kernel, "causal")
            self.conv2 = CausalConv2d(channels, 2 * in_channels, kernel, "causal")
        else:
            self.conv1 = WNConv2d(in_channels, channels)
            self.conv2 = WNConv2d(channels, 2 * in_channels)
        if aux_channels:
            self.aux_conv = WNConv2d(aux_channels, channels)
        self.dropout = nn.Dropout(dropout)
        if condition_channels:
            self.condition = WNConv2d(condition_channels, 2 * in_channels, bias=False)

    def forward(
        self, x: torch.Tensor, aux: torch.Tensor | None = None, condition: torch.Tensor | None = None
    ) -> torch.Tensor:
        hidden = self.conv1(F.elu(x))
        if aux is not None:
            hidden = hidden + self.aux_conv(F.elu(aux))
        gates = self.conv2(self.dropout(F.elu(hidden)))
        if condition is not None:
            gates = gates + self.condition(condition)
        return F.glu(gates, dim=1) + x


NEGATIVE_SCORE = -1e4  # the baseline's fill for masked attention scores


class CausalAttention(nn.Module):
    """Multi-head attention in which each position attends to strictly earlier positions only.

    The first position has none: its output is zero.
    """

    def __init__(
        self, query_channels: int, key_channels: int, channels: int, n_head: int, dropout: float
    ) -> None:
        super().__init__()
        if channels % n_head:
            raise ValueError(f"attention width {channels} is not divisible by n_head={n_head}")
        self.query = WeightNormLinear(query_channels, channels)
        self.key = WeightNormLinear(key_channels, channels)
        self.value = WeightNormLinear(key_channels, channels)
        self.n_head = n_head
        self.dropout = nn.Dropout(dropout)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, n_head, N, C / n_head)."""
        batch, positions, channels = x.shape
        return x.view(batch, positions, self.n_head, channels // self.n_head).transpose(1, 2)

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = query.shape
        positions = height * width
        query_seq = query.flatten(2).transpose(1, 2)
        key_seq = key.flatten(2).transpose(1, 2)
        q = self._heads(self.query(query_seq))
        k = self._heads(self.key(key_seq))
        v = self._heads(self.value(key_seq))
        scores = q @ k.transpose(2, 3) / math.sqrt(q.shape[-1])
        earlier = torch.ones(positions, positions, dtype=torch.bool, device=q.device).tril(-1)
        weights = torch.softmax(scores.masked_fill(~earlier, NEGATIVE_SCORE), dim=3)
        has_earlier = (torch.arange(positions, device=q.device) > 0).to(weights.dtype).unsqueeze(1)
        out = self.dropout(weights * has_earlier) @ v
        return out.transpose(1, 2).reshape(batch, height, width, -1).permute(0, 3, 1, 2)


class PixelBlock(nn.Module):
    """Causal gated residual blocks, then causal attention (or a 1x1 conv) with the background."""

    def __init__(
        self,
        channel: int,
        res_channel: int,
        kernel_size: int,
        n_res_block: int,
        attention: bool,
        n_head: int,
        dropout: float,
        label_channels: int = 1,
    ) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(
            GatedResBlock(channel, res_channel, kernel_size, True, dropout, condition_channels=label_channels)
            for _ in range(n_res_block)
        )
        self.attention = attention
        if attention:
            self.key_resblock = GatedResBlock(2 * channel + 2, channel, 1, False, dropout)
            self.query_resblock = GatedResBlock(channel + 2, channel, 1, False, dropout)
            self.causal_attention = CausalAttention(
                channel + 2, 2 * channel + 2, channel // 2, n_head, dropout
            )
            self.out_resblock = GatedResBlock(
                channel, channel, 1, False, dropout, aux_channels=channel // 2
            )
        else:
            self.out = WNConv2d(channel + 2, channel)

    def forward(
        self, x: torch.Tensor, background: torch.Tensor, condition: torch.Tensor
    ) -> torch.Tensor:
        out = x
        for resblock in self.resblocks:
            out = resblock(out, condition=condition)
        if not self.attention:
            return self.out(torch.cat([out, background], 1))
        key = self.key_resblock(torch.cat([x, out, background], 1))
        query = self.query_resblock(torch.cat([out, background], 1))
        return self.out_resblock(out, self.causal_attention(query, key))


class LabelEmbedding(nn.Module):
    """One-hot label -> a conditioning map (B, channels, H, W): four linear layers, no activations.

    The baseline's map has one channel; more channels let each gated block take the label in
    along as many directions instead of one.
    """

    def __init__(self, n_labels: int, hidden: int, map_shape: tuple[int, int], channels: int = 1) -> None:
        super().__init__()
        self.map_shape = map_shape
        self.channels = channels
        self.blocks = nn.Sequential(
            nn.Linear(n_labels, hidden),
            nn.Linear(hidden, hidden),
            nn.Linear(hidden, hidden),
            nn.Linear(hidden, channels * map_shape[0] * map_shape[1]),
        )

    def forward(self, one_hot: torch.Tensor) -> torch.Tensor:
        return self.blocks(one_hot).view(-1, self.channels, *self.map_shape)


def coordinate_background(map_shape: tuple[int, int]) -> torch.Tensor:
    """(1, 2, H, W): (row - H/2) / H in channel 0, (col - W/2) / W in channel 1."""
    height, width = map_shape
    rows = (torch.arange(height, dtype=torch.float32) - height / 2) / height
    cols = (torch.arange(width, dtype=torch.float32) - width / 2) / width
    return torch.stack(
        [rows.view(height, 1).expand(height, width), cols.view(1, width).expand(height, width)]
    ).unsqueeze(0)


class PixelSNAIL(nn.Module):
    """Class-conditional PixelSNAIL over (H, W) maps of codes in [0, vocab_size).

    ``forward(codes (B, h, W), labels (B,)) -> logits (B, vocab_size, h, W)``. ``h`` may be less
    than H: the model then sees the first ``h`` rows (a prefix), and its logits equal the full
    map's on those rows. The logits at a position depend only on the codes before it (raster
    order) and on the label. With ``label_dropout`` > 0 the labels may also be ``null_label``.
    """

    def __init__(
        self,
        map_shape: tuple[int, int],
        vocab_size: int,
        n_classes: int,
        *,
        channel: int,
        kernel_size: int,
        n_block: int,
        n_res_block: int,
        res_channel: int,
        attention: bool,
        n_head: int,
        dropout: float,
        label_hidden: int,
        label_dropout: float = 0.0,
        label_channels: int = 1,
    ) -> None:
        super().__init__()
        _check_sizes(dict(
            map_shape=tuple(map_shape), vocab_size=vocab_size, n_classes=n_classes, channel=channel,
            kernel_size=kernel_size, n_block=n_block, n_res_block=n_res_block, res_channel=res_channel,
            attention=attention, n_head=n_head, dropout=dropout, label_hidden=label_hidden,
            label_dropout=label_dropout, label_channels=label_channels,
        ))
        self.map_shape = tuple(map_shape)
        self.vocab_size = vocab_size
        self.n_classes = n_classes
        self.label_dropout = label_dropout
        k = kernel_size
        self.horizontal = CausalConv2d(vocab_size, channel, (k // 2, k), "down")
        self.vertical = CausalConv2d(vocab_size, channel, ((k + 1) // 2, k // 2), "downright")
        self.register_buffer("background", coordinate_background(self.map_shape))
        self.blocks = nn.ModuleList(
            PixelBlock(channel, res_channel, k, n_res_block, attention, n_head, dropout, label_channels)
            for _ in range(n_block)
        )
        self.embedNet = LabelEmbedding(self.n_labels, label_hidden, self.map_shape, label_channels)  # baseline's name
        self.out = nn.Sequential(nn.ELU(), WNConv2d(channel, vocab_size))

    @property
    def null_label(self) -> int | None:
        """The learned null label's id (n_classes) when trained with label dropout, else None."""
        return self.n_classes if self.label_dropout > 0 else None

    @property
    def n_labels(self) -> int:
        """Label ids the model accepts: the classes, plus the null label when it has one."""
        return self.n_classes + int(self.null_label is not None)

    def null_labels(self, batch: int) -> torch.Tensor:
        """(batch,) null labels on the model's device; ValueError when the model has none."""
        if self.null_label is None:
            raise ValueError(
                "this prior has no null label (trained with prior.label_dropout 0), so it cannot be guided; "
                "train it with prior.label_dropout > 0 (e.g. 0.1) or sample with guidance 1"
            )
        return torch.full((batch,), self.null_label, dtype=torch.long, device=self.background.device)

    def drop_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """Each label replaced by the null label with probability label_dropout (torch's global RNG).

        Returns ``labels`` itself, drawing nothing, when label_dropout is 0.
        """
        if self.null_label is None:
            return labels
        dropped = torch.rand(labels.shape, device=labels.device) < self.label_dropout
        return torch.where(dropped, torch.full_like(labels, self.null_label), labels)

    def label_map(self, labels: torch.Tensor) -> torch.Tensor:
        """The conditioning map of each label, (B, label_channels, H, W); in training mode after ``drop_labels``."""
        if self.training:
            labels = self.drop_labels(labels)
        one_hot = F.one_hot(labels, self.n_labels).to(self.background.dtype)
        return self.embedNet(one_hot)

    def input_stacks(self, codes: torch.Tensor) -> torch.Tensor:
        """The first block's input (B, channel, h, W): position p sees only codes before p."""
        one_hot = F.one_hot(codes, self.vocab_size).permute(0, 3, 1, 2).to(self.background.dtype)
        return shift_down(self.horizontal(one_hot)) + shift_right(self.vertical(one_hot))

    def forward(self, codes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.check_inputs(codes, labels)
        batch, height, _ = codes.shape
        out = self.input_stacks(codes)
        background = self.background[:, :, :height].expand(batch, -1, -1, -1)
        condition = self.label_map(labels)[:, :, :height]
        for block in self.blocks:
            out = block(out, background, condition)
        return self.out(out)

    def check_inputs(self, codes: torch.Tensor, labels: torch.Tensor) -> None:
        """Raise ValueError naming what is wrong with a (codes, labels) batch."""
        height, width = self.map_shape
        if codes.dim() != 3 or not 1 <= codes.shape[1] <= height or codes.shape[2] != width:
            raise ValueError(
                f"codes must be (batch, rows <= {height}, {width}), got {tuple(codes.shape)}"
            )
        if labels.shape != codes.shape[:1]:
            raise ValueError(
                f"labels must be ({codes.shape[0]},), one per code map, got {tuple(labels.shape)}"
            )
        _check_range("codes", codes, self.vocab_size, "vocab_size")
        limit_name = "n_classes + the null label" if self.null_label is not None else "n_classes"
        _check_range("labels", labels, self.n_labels, limit_name)


def _check_range(name: str, values: torch.Tensor, limit: int, limit_name: str) -> None:
    if values.dtype != torch.long:
        raise ValueError(f"{name} must be a LongTensor, got {values.dtype}")
    if values.numel() and (values.min() < 0 or values.max() >= limit):
        raise ValueError(
            f"{name} must lie in [0, {limit}) ({limit_name}={limit}); "
            f"got min {int(values.min())}, max {int(values.max())}"
        )


def _check_sizes(args: dict) -> None:
    height, width = args["map_shape"]
    checks = [
        (height >= 1 and width >= 1, "map_shape", "must be positive"),
        (args["vocab_size"] >= 1, "vocab_size", "must be positive"),
        (args["n_classes"] >= 1, "n_classes", "must be positive"),
        (args["kernel_size"] >= 3 and args["kernel_size"] % 2, "kernel_size", "must be odd and >= 3"),
        (args["n_block"] >= 1, "n_block", "must be positive"),
        (args["n_res_block"] >= 0, "n_res_block", "must be >= 0"),
        (args["channel"] >= 1, "channel", "must be positive"),
        (args["res_channel"] >= 1, "res_channel", "must be positive"),
        (args["label_hidden"] >= 1, "label_hidden", "must be positive"),
        (args["label_channels"] >= 1, "label_channels", "must be positive"),
        (0.0 <= args["dropout"] < 1.0, "dropout", "must be in [0, 1)"),
        (0.0 <= args["label_dropout"] < 1.0, "label_dropout", "must be in [0, 1)"),
    ]
    if args["attention"]:
        channel, n_head = args["channel"], args["n_head"]
        width_ok = channel % 2 == 0 and n_head >= 1 and (channel // 2) % n_head == 0
        checks.append((width_ok, "n_head", f"must divide channel / 2 with channel even (channel={channel})"))
    for ok, key, rule in checks:
        if not ok:
            raise ValueError(f"PixelSNAIL {key}={args[key]!r}: {rule}")


def loss_and_accuracy(
    model: PixelSNAIL, codes: torch.Tensor, labels: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Cross-entropy (mean over every position of every map) and the argmax accuracy (detached)."""
    logits = model(codes, labels)
    loss = F.cross_entropy(logits, codes)
    accuracy = (logits.detach().argmax(dim=1) == codes).float().mean()
    return {"loss": loss, "accuracy": accuracy}


BASELINE_UNUSED = "cond_resnet."  # built by the baseline's constructor, never used by its forward


def load_baseline_state_dict(model: PixelSNAIL, state_dict: dict[str, torch.Tensor]) -> None:
    """Load a DCASE baseline checkpoint's ``model`` dict, dropping its unused ``cond_resnet.*``.

    Raises CheckpointError naming missing, unexpected and wrongly shaped keys.
    """
    kept = {key: value for key, value in state_dict.items() if not key.startswith(BASELINE_UNUSED)}
    own = model.state_dict()
    problems = []
    missing = sorted(own.keys() - kept.keys())
    unexpected = sorted(kept.keys() - own.keys())
    if missing:
        problems.append(f"missing {len(missing)} keys (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} keys (e.g. {', '.join(unexpected[:3])})")
    wrong = [key for key in own.keys() & kept.keys() if own[key].shape != kept[key].shape]
    for key in sorted(wrong)[:3]:
        problems.append(
            f"{key} has shape {tuple(kept[key].shape)}, this model needs {tuple(own[key].shape)}"
        )
    if problems:
        raise CheckpointError(
            "not a baseline PixelSNAIL state dict for this model (" + "; ".join(problems) + "); "
            "check the map shape, vocabulary, class count, sizes and attention it was trained with"
        )
    model.load_state_dict(kept, strict=True)
