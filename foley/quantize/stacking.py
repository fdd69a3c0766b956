"""Stack the quantiser levels' code maps into the one 2-D map the prior models, and back.

`freq`: level blocks along frequency (rows 0..h-1 are level 0, then level 1, ...), as the RVQ paper.
`interleave`: rows interleaved (row r*L + l is row r of level l), so a row's levels are adjacent.
`time`: the `freq` map transposed (time along rows): the prior's raster scan then takes one time
step at a time, all its frequency codes (every level) in a row, instead of one frequency row at a
time across the whole clip.
"""

from __future__ import annotations

import torch

from foley.config import STACKS


def stack_levels(codes: torch.Tensor, mode: str) -> torch.Tensor:
    """(B, L, h, w) -> (B, L*h, w)."""
    batch, levels, height, width = codes.shape
    if mode == "freq":
        return codes.reshape(batch, levels * height, width)
    if mode == "interleave":
        return codes.transpose(1, 2).reshape(batch, height * levels, width)
    if mode == "time":
        return codes.reshape(batch, levels * height, width).transpose(1, 2).contiguous()
    raise ValueError(f"unknown stack mode {mode!r}; use one of {', '.join(STACKS)}")


def unstack_levels(maps: torch.Tensor, levels: int, mode: str) -> torch.Tensor:
    """(B, L*h, w) (`time`: (B, w, L*h)) -> (B, L, h, w); the exact inverse of stack_levels."""
    if mode == "time":
        return unstack_levels(maps.transpose(1, 2), levels, "freq")
    batch, rows, width = maps.shape
    if rows % levels:
        raise ValueError(f"a map of {rows} rows cannot hold {levels} levels")
    height = rows // levels
    if mode == "freq":
        return maps.reshape(batch, levels, height, width)
    if mode == "interleave":
        return maps.reshape(batch, height, levels, width).transpose(1, 2)
    raise ValueError(f"unknown stack mode {mode!r}; use one of {', '.join(STACKS)}")
