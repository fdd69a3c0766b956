import pytest
import torch

from foley.quantize.ema import EMACodebook, ResidualQuantizer, codebook_usage


def brute_force_codes(vectors: torch.Tensor, embed: torch.Tensor) -> torch.Tensor:
    return torch.stack([((embed.t() - v) ** 2).sum(1).argmin() for v in vectors])


@pytest.mark.parametrize("levels", [1, 2, 4])
def test_decoding_codes_equals_the_quantized_output(levels):
    torch.manual_seed(0)
    rvq = ResidualQuantizer(dim=8, levels=levels, size=16).eval()
    z = torch.randn(2, 8, 3, 5)
    result = rvq(z)
    assert result.codes.shape == (2, levels, 3, 5)
    torch.testing.assert_close(rvq.decode_codes(result.codes), result.quantized, atol=1e-5, rtol=1e-5)
    chosen = sum(rvq.levels[i].embed.t()[result.codes[:, i]] for i in range(levels)).permute(0, 3, 1, 2)
    torch.testing.assert_close(result.quantized, chosen, atol=1e-5, rtol=1e-5)


def test_each_level_picks_the_nearest_code_of_its_residual():
    torch.manual_seed(1)
    rvq = ResidualQuantizer(dim=4, levels=3, size=8).eval()
    z = torch.randn(1, 4, 2, 6)
    result = rvq(z)
    residual = z.permute(0, 2, 3, 1).reshape(-1, 4)
    for level, codebook in enumerate(rvq.levels):
        expected = brute_force_codes(residual, codebook.embed)
        assert torch.equal(result.codes[:, level].reshape(-1), expected)
        residual = residual - codebook.embed.t()[expected]


def test_commitment_is_the_sum_of_level_errors_and_gradient_is_straight_through():
    torch.manual_seed(2)
    rvq = ResidualQuantizer(dim=4, levels=2, size=8).eval()
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    result = rvq(z)
    flat = z.detach().permute(0, 2, 3, 1).reshape(-1, 4)
    q0 = rvq.levels[0].embed.t()[result.codes[:, 0].reshape(-1)]
    q1 = rvq.levels[1].embed.t()[result.codes[:, 1].reshape(-1)]
    expected = ((q0 - flat) ** 2).mean() + ((q1 - (flat - q0)) ** 2).mean()
    torch.testing.assert_close(result.commitment, expected)
    result.quantized.sum().backward()
    torch.testing.assert_close(z.grad, torch.ones_like(z))


def test_ema_updates_codebooks_only_in_training_mode():
    torch.manual_seed(3)
    rvq = ResidualQuantizer(dim=4, levels=2, size=8)
    z = torch.randn(4, 4, 5, 5)
    before = [c.embed.clone() for c in rvq.levels]
    rvq.eval()
    rvq(z)
    assert all(torch.equal(b, c.embed) for b, c in zip(before, rvq.levels))
    rvq.train()
    rvq(z)
    assert all(not torch.equal(b, c.embed) for b, c in zip(before, rvq.levels))
    assert all(c.cluster_size.sum() > 0 for c in rvq.levels)


def test_ema_step_matches_the_sonnet_formula():
    torch.manual_seed(4)
    book = EMACodebook(dim=3, size=5, decay=0.9)
    x = torch.randn(20, 3)
    embed0, avg0 = book.embed.clone(), book.embed_avg.clone()
    _, codes = book(x)
    onehot = torch.nn.functional.one_hot(codes, 5).float()
    size = 0.1 * onehot.sum(0)
    avg = 0.9 * avg0 + 0.1 * x.t() @ onehot
    n = size.sum()
    smoothed = (size + 1e-5) / (n + 5 * 1e-5) * n
    torch.testing.assert_close(book.cluster_size, size)
    torch.testing.assert_close(book.embed, avg / smoothed)
    assert torch.equal(codes, brute_force_codes(x, embed0))


def test_reconstruction_error_does_not_grow_as_levels_are_added():
    torch.manual_seed(5)
    data = torch.randn(64, 6, 4, 4) * torch.linspace(0.2, 2.0, 6).view(1, 6, 1, 1)
    rvq = ResidualQuantizer(dim=6, levels=4, size=32, decay=0.8).train()
    for _ in range(60):
        rvq(data[torch.randint(0, 64, (16,))])
    rvq.eval()
    errors = [float((rvq(data, levels=n).quantized - data).pow(2).mean()) for n in range(1, 5)]
    assert all(later <= earlier for earlier, later in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.5 * errors[0]


def test_codebook_usage():
    codes = torch.tensor([[[[0, 0], [1, 1]], [[2, 2], [2, 2]]]])  # (1, 2 levels, 2, 2)
    usage = codebook_usage(codes, size=4)
    assert usage["counts"].tolist() == [[2, 2, 0, 0], [0, 0, 4, 0]]
    torch.testing.assert_close(usage["perplexity"], torch.tensor([2.0, 1.0], dtype=torch.float64))
    assert usage["unused"].tolist() == [2, 3]


def test_data_init_uses_the_codebook_where_random_init_collapses():
    torch.manual_seed(6)
    data = torch.randn(8, 4, 6, 6) * 0.5 + 10.0  # far from N(0, 1)
    usage = {}
    for init in ("random", "data"):
        rvq = ResidualQuantizer(dim=4, levels=1, size=32, init=init).train()
        usage[init] = int((codebook_usage(rvq(data).codes, 32)["counts"] > 0).sum())
    assert usage["random"] <= 3 and usage["data"] >= 20


def test_dead_codes_move_onto_batch_vectors():
    torch.manual_seed(7)
    book = EMACodebook(dim=2, size=8, decay=0.5, dead_code_threshold=0.5).train()
    x = torch.randn(64, 2) * 0.1 + 3.0
    book(x)
    book(x)
    alive = book.cluster_size >= 0.5
    assert alive.all()
    distances = torch.cdist(book.embed.t(), x).min(1).values
    assert (distances < 1.0).all()  # every code now sits among the data
