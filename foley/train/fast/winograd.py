"""Winograd convolution (Lavin & Gray 2016) of channels-last maps, forward and backward.

A stride-1 correlation with an r_h x r_w kernel is computed on output tiles of m_h x m_w: every
input tile of n_h x n_w (n = m + r - 1) is transformed (B^T d B), so is the kernel (G g G^T),
the transformed values are multiplied - one (tiles x C_in) @ (C_in x C_out) product per
transformed position - and the products are transformed back (A^T M A). A 5 x 5 kernel on 4 x 4
tiles takes 64 products per 16 outputs: 4 multiply-adds per output and channel pair instead of
25. The transforms come from Toom-Cook interpolation at the points ``POINTS`` and infinity,
built in exact rational arithmetic: the result equals the direct convolution's up to float
rounding (a few times a direct convolution's, measured in tests/test_fast_prior.py).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction

import torch
from torch.nn import functional as F

# Interpolation points in the order they are taken; 0, +-1, +-1/2, +-2 keep 8-point transforms
# (4 x 4 tiles of a 5-tap kernel) the most accurate of the small rational sets we tried.
POINTS = (Fraction(0), Fraction(1), Fraction(-1), Fraction(1, 2), Fraction(-1, 2), Fraction(2), Fraction(-2))
MAX_POINTS = len(POINTS) + 1  # with infinity


def tile_size(kernel: int) -> int | None:
    """The output tile along an axis with this kernel length (None: too long for ``POINTS``)."""
    for tile in (4, 2):
        if tile + kernel - 1 <= MAX_POINTS:
            return tile
    return None


def _vandermonde(points: tuple[Fraction, ...], columns: int) -> list[list[Fraction]]:
    rows = [[point**j for j in range(columns)] for point in points]
    return rows + [[Fraction(0)] * (columns - 1) + [Fraction(1)]]  # the point at infinity


def _inverse(matrix: list[list[Fraction]]) -> list[list[Fraction]]:
    """Gauss-Jordan inverse in exact arithmetic (the Vandermonde matrix of distinct points)."""
    size = len(matrix)
    rows = [row[:] + [Fraction(int(i == j)) for j in range(size)] for i, row in enumerate(matrix)]
    for col in range(size):
        pivot = next(r for r in range(col, size) if rows[r][col] != 0)
        rows[col], rows[pivot] = rows[pivot], rows[col]
        rows[col] = [value / rows[col][col] for value in rows[col]]
        for r in range(size):
            if r != col and rows[r][col] != 0:
                rows[r] = [a - rows[r][col] * b for a, b in zip(rows[r], rows[col])]
    return [row[size:] for row in rows]


def toom_cook(tile: int, kernel: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A^T (m x n), G (n x r), B^T (n x n)) in float64 with y = A^T [(G g) * (B^T d)] the
    correlation y_i = sum_k g_k d_(i+k) of an n-long input d with an r-long kernel g."""
    n = tile + kernel - 1
    points = POINTS[: n - 1]
    inverse = _inverse(_vandermonde(points, n))
    as_tensor = lambda rows: torch.tensor([[float(v) for v in row] for row in rows], dtype=torch.float64)
    return as_tensor(_vandermonde(points, tile)).t(), as_tensor(_vandermonde(points, kernel)), as_tensor(inverse).t()


@dataclass(frozen=True)
class WinogradPlan:
    """The transforms for one kernel and tile size, dtype and device: the input's per axis
    (B^T: n x n, applied to rows then columns), the kernel's and the output's over both axes
    (Kronecker products: n^2 x r^2 and m^2 x n^2; position index = row * n_w + column)."""

    kernel: tuple[int, int]
    tile: tuple[int, int]
    row_input_transform: torch.Tensor
    col_input_transform: torch.Tensor
    kernel_transform: torch.Tensor
    output_transform: torch.Tensor

    @property
    def window(self) -> tuple[int, int]:
        return self.tile[0] + self.kernel[0] - 1, self.tile[1] + self.kernel[1] - 1

    def grid(self, out_height: int, out_width: int) -> tuple[int, int]:
        """Tiles along each axis covering an output of this size."""
        return -(-out_height // self.tile[0]), -(-out_width // self.tile[1])


@functools.lru_cache(maxsize=32)
def winograd_plan(kernel: tuple[int, int], tile: tuple[int, int], dtype: torch.dtype, device: torch.device) -> WinogradPlan:
    (a_h, g_h, b_h), (a_w, g_w, b_w) = toom_cook(tile[0], kernel[0]), toom_cook(tile[1], kernel[1])
    cast = lambda matrix: matrix.to(dtype=dtype, device=device).contiguous()
    return WinogradPlan(kernel, tile, cast(b_h), cast(b_w), cast(torch.kron(g_h, g_w)), cast(torch.kron(a_h, a_w)))


def winograd_conv2d(x: torch.Tensor, weight_v: torch.Tensor, weight_g: torch.Tensor, kernel_mask: torch.Tensor | None,
                    padding: tuple[int, int, int, int], bias: torch.Tensor | None = None) -> torch.Tensor:
    """The convolution of channels-last x (B, H, W, C_in), zero-padded by ``padding`` = (top,
    bottom, left, right), with the weight-normed kernel g * (v * mask) / |v * mask| (norm per
    output channel, as ``foley.models.layers.WeightNormConv2d``), plus ``bias``: (B, H', W', C_out).

    Weight norm is folded in: the products use the transformed v * mask and the outputs are
    scaled by g / |v * mask| (and the bias added) as they are laid out from the tiles, so the
    kernel is transformed straight from v (no normalised copy).
    """
    kernel = tuple(weight_v.shape[2:])
    tile = (tile_size(kernel[0]), tile_size(kernel[1]))
    if None in tile:
        raise ValueError(f"no Winograd transform for a {kernel[0]} x {kernel[1]} kernel (at most {MAX_POINTS - 1} taps)")
    dtype = weight_v.dtype  # the parameters': under CPU autocast x may be bf16, and the function computes in float32
    plan = winograd_plan(kernel, tile, dtype, x.device)
    mask = torch.ones(kernel, dtype=dtype, device=x.device) if kernel_mask is None else kernel_mask
    if bias is None:
        bias = torch.zeros(weight_v.shape[0], dtype=dtype, device=x.device)
    return _WinogradConv.apply(x, weight_v, weight_g, bias, mask, plan, padding)


def _transform_input(x: torch.Tensor, plan: WinogradPlan, padding: tuple[int, int, int, int],
                     grid: tuple[int, int]) -> torch.Tensor:
    """B^T d B of every overlapping input window d: (n_h * n_w, B * tiles, C), position-major.
    Columns first (each row's windows), then rows: two small products instead of one n^2 x n^2."""
    (n_h, n_w), (m_h, m_w), (tiles_h, tiles_w) = plan.window, plan.tile, grid
    batch, height, width, channels = x.shape
    top, _, left, _ = padding
    rows, cols = tiles_h * m_h + n_h - m_h, tiles_w * m_w + n_w - m_w
    padded = F.pad(x, (0, 0, left, cols - left - width, top, rows - top - height))
    col_windows = padded.unfold(2, n_w, m_w).permute(4, 0, 1, 2, 3).reshape(n_w, -1)  # (n_w, B * rows * tiles_w * C)
    by_col = (plan.col_input_transform @ col_windows).view(n_w, batch, rows, tiles_w, channels)
    row_windows = by_col.unfold(2, n_h, m_h).permute(5, 0, 1, 2, 3, 4).reshape(n_h, -1)  # (n_h, n_w * B * tiles * C)
    return (plan.row_input_transform @ row_windows).view(n_h * n_w, -1, channels)


def _transform_input_backward(grad: torch.Tensor, plan: WinogradPlan, padding: tuple[int, int, int, int],
                              in_shape: torch.Size, grid: tuple[int, int]) -> torch.Tensor:
    """The gradient of ``_transform_input`` with respect to x: each product transposed, and each
    window's gradient summed back where the window was read (overlap-add along rows, then columns)."""
    (n_h, n_w), (m_h, m_w), (tiles_h, tiles_w) = plan.window, plan.tile, grid
    batch, height, width, channels = in_shape
    top, _, left, _ = padding
    row_windows = (plan.row_input_transform.t() @ grad.view(n_h, -1)).view(n_h, n_w, batch, tiles_h, tiles_w, channels)
    by_col = _overlap_add(row_windows.permute(1, 2, 3, 0, 4, 5), m_h, 2)  # (n_w, B, rows, tiles_w, C)
    col_windows = (plan.col_input_transform.t() @ by_col.view(n_w, -1)).view(n_w, batch, -1, tiles_w, channels)
    padded = _overlap_add(col_windows.permute(1, 2, 3, 0, 4), m_w, 2)  # (B, rows, cols, C)
    return padded[:, top : top + height, left : left + width]


def _overlap_add(windows: torch.Tensor, step: int, axis: int) -> torch.Tensor:
    """Windows (..., tiles, n, ...) - tiles along ``axis``, window offsets after them - summed where
    they overlap: offset o of tile t lands at t * step + o. Offsets o = q * step + r are taken a
    block of ``step`` (one q) at a time, so ceil(n / step) additions instead of n."""
    tiles, n = windows.shape[axis], windows.shape[axis + 1]
    blocks = -(-n // step)
    shape = windows.shape
    out = windows.new_zeros(*shape[:axis], tiles + blocks - 1, step, *shape[axis + 2 :])
    for q in range(blocks):
        width = min(step, n - q * step)
        out.narrow(axis, q, tiles).narrow(axis + 1, 0, width).add_(windows.narrow(axis + 1, q * step, width))
    return out.flatten(axis, axis + 1)


class _WinogradConv(torch.autograd.Function):
    """Forward and backward of ``winograd_conv2d``. The kernel transform is one product with v
    read as (C_out * C_in, taps) in place (BLAS takes the transposed operand; nothing is copied),
    giving kernels as (positions, C_out, C_in); its gradient comes back in v's own layout. The
    output transform's result y stays in tile order; the output is read from it through a view."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cpu", cast_inputs=torch.float32)  # float32 under CPU autocast
    def forward(ctx, x, weight_v, weight_g, bias, mask, plan: WinogradPlan, padding):
        batch, height, width, in_channels = x.shape
        out_channels, taps = weight_v.shape[0], mask.numel()
        top, bottom, left, right = padding
        out_h, out_w = height + top + bottom - plan.kernel[0] + 1, width + left + right - plan.kernel[1] + 1
        grid = plan.grid(out_h, out_w)
        positions = plan.window[0] * plan.window[1]
        kernel_transform = plan.kernel_transform * mask.view(1, -1)  # (positions, taps)
        kernels = (kernel_transform @ weight_v.reshape(-1, taps).t()).view(positions, out_channels, in_channels)
        transformed = _transform_input(x, plan, padding, grid)  # (positions, tiles, C_in)
        products = torch.bmm(transformed, kernels.transpose(1, 2))  # (positions, tiles, C_out)
        y = plan.output_transform @ products.view(positions, -1)  # (m_h * m_w, B * tiles * C_out)
        norm = (weight_v.square().sum(1).view(out_channels, taps) @ mask.view(-1)).sqrt()  # |v * mask| (mask of 0 and 1)
        scale = weight_g.flatten() / norm
        out = torch.addcmul(bias, _untile(y, plan, batch, grid, out_channels), scale)
        ctx.save_for_backward(weight_v, kernel_transform, transformed, kernels, y, norm, scale)
        ctx.plan, ctx.padding, ctx.in_shape, ctx.grid, ctx.mask = plan, padding, x.shape, grid, mask
        return out.flatten(1, 2).flatten(2, 3)[:, :out_h, :out_w]

    @staticmethod
    @torch.amp.custom_bwd(device_type="cpu")
    def backward(ctx, grad):
        weight_v, kernel_transform, transformed, kernels, y, norm, scale = ctx.saved_tensors
        plan, grid = ctx.plan, ctx.grid
        positions, taps = kernel_transform.shape
        out_channels, in_channels = weight_v.shape[:2]
        tiled = _tile(grad, plan, grid).view(-1, out_channels)  # zeros beyond the output
        grad_scale = (tiled * y.view(-1, out_channels)).sum(0)
        grad_products = (plan.output_transform.t() @ (tiled * scale).view(len(y), -1)).view(positions, -1, out_channels)
        grad_kernels = torch.bmm(grad_products.transpose(1, 2), transformed)  # (positions, C_out, C_in)
        grad_v = (grad_kernels.view(positions, -1).t() @ kernel_transform).view(out_channels, in_channels, taps)
        norm_term = ctx.mask.view(1, 1, -1) * (-grad_scale * scale / norm.square()).view(-1, 1, 1)
        grad_v.addcmul_(weight_v.view_as(grad_v), norm_term)  # d|v * mask| / dv = v * mask / |v * mask|
        grad_g = (grad_scale / norm).view(out_channels, 1, 1, 1)
        grad_bias = grad.sum((0, 1, 2))
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_transformed = torch.bmm(grad_products, kernels)
            grad_x = _transform_input_backward(grad_transformed, plan, ctx.padding, ctx.in_shape, grid)
        return grad_x, grad_v.view_as(weight_v), grad_g, grad_bias, None, None, None


def _untile(values: torch.Tensor, plan: WinogradPlan, batch: int, grid: tuple[int, int], channels: int) -> torch.Tensor:
    """(m_h * m_w, B * tiles * C) -> a view (B, tiles_h, m_h, tiles_w, m_w, C) in output order."""
    (m_h, m_w), (tiles_h, tiles_w) = plan.tile, grid
    return values.view(m_h, m_w, batch, tiles_h, tiles_w, channels).permute(2, 3, 0, 4, 1, 5)


def _tile(grad: torch.Tensor, plan: WinogradPlan, grid: tuple[int, int]) -> torch.Tensor:
    """The inverse of ``_untile`` (zeros beyond the output): (m_h * m_w, B * tiles * C)."""
    (m_h, m_w), (tiles_h, tiles_w) = plan.tile, grid
    batch, height, width, channels = grad.shape
    padded = F.pad(grad, (0, 0, 0, tiles_w * m_w - width, 0, tiles_h * m_h - height))
    return padded.view(batch, tiles_h, m_h, tiles_w, m_w, channels).permute(2, 4, 0, 1, 3, 5).reshape(m_h * m_w, -1)
