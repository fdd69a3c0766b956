import pytest
import torch

from foley.quantize.ema import EMACodebook, ResidualQuantizer, codebook_usage
from foley.quantize.kmeans import kmeans


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


def lloyd(samples, means, iterations):
    """Lloyd's algorithm written out: nearest mean by brute force, members' average, empty means kept;
    returns the means and the member counts of the assignment they average."""
    means = means.clone()
    for _ in range(iterations):
        assignment = brute_force_codes(samples, means.t())
        for j in range(len(means)):
            members = samples[assignment == j]
            if len(members):
                means[j] = members.mean(0)
    return means, torch.bincount(assignment, minlength=len(means)).float()


def test_kmeans_equals_lloyds_algorithm_from_the_same_start():
    torch.manual_seed(8)
    samples = torch.randn(60, 3)
    torch.manual_seed(9)
    result = kmeans(samples, 5, iterations=4)
    torch.manual_seed(9)
    start = samples[torch.randperm(60)[:5]]
    means, counts = lloyd(samples, start, 4)
    torch.testing.assert_close(result.means, means)
    assert torch.equal(result.counts, counts) and result.counts.sum() == 60


def test_converged_kmeans_means_are_the_averages_of_their_nearest_samples():
    torch.manual_seed(10)
    samples = torch.randn(200, 2)
    result = kmeans(samples, 6)
    nearest = brute_force_codes(samples, result.means.t())
    assert torch.equal(torch.bincount(nearest, minlength=6).float(), result.counts)
    for j in range(6):
        torch.testing.assert_close(result.means[j], samples[nearest == j].mean(0))
    duplicates = torch.tensor([[1.0, 1.0]] * 4)  # more means than distinct samples: some stay empty
    result = kmeans(duplicates, 3)
    assert result.counts.sum() == 4 and (result.means == 1.0).all()


def test_kmeans_init_sets_codes_sizes_and_sums_so_the_first_ema_step_keeps_the_means():
    torch.manual_seed(11)
    centres = torch.randn(8, 4) * 5
    x = torch.cat([c + 0.05 * torch.randn(30, 4) for c in centres])
    book = EMACodebook(dim=4, size=10, init="kmeans").train()
    torch.manual_seed(12)
    book(x)  # initialises on this batch, then takes one EMA step on it
    torch.manual_seed(12)
    expected = kmeans(x, 10)
    # EnCodec's embed_avg = means (not means * counts) would shrink every code here by 1/count,
    # and VQP's means * counts would pull a code that k-means left empty to the origin.
    torch.testing.assert_close(book.embed.t(), expected.means, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(book.cluster_size, expected.counts)
    assert (expected.counts >= 3).all()
    same = torch.tensor([[2.0, -1.0]] * 6)  # three equal means: the first takes every vector
    book = EMACodebook(dim=2, size=3, init="kmeans").train()
    book(same)
    assert kmeans(same, 3).counts.tolist() == [6.0, 0.0, 0.0]
    torch.testing.assert_close(book.embed.t(), same[:3], rtol=1e-3, atol=1e-3)  # the empty codes kept their vector


def test_kmeans_init_uses_the_codebook_where_random_init_collapses():
    torch.manual_seed(6)
    data = torch.randn(8, 4, 6, 6) * 0.5 + 10.0  # far from N(0, 1)
    rvq = ResidualQuantizer(dim=4, levels=2, size=32, init="kmeans").train()
    codes = rvq(data).codes
    used = (codebook_usage(codes, 32)["counts"] > 0).sum(1)
    assert (used >= 24).all(), used  # each level: its k-means of its own residuals


@pytest.mark.parametrize("dropout, full_share", [(0.0, 1.0), (1.0, 0.25), (0.5, 0.625)])
def test_dropout_draws_the_number_of_levels_per_step(dropout, full_share):
    torch.manual_seed(13)
    rvq = ResidualQuantizer(dim=2, levels=4, size=4, dropout=dropout).train()
    draws = [rvq.training_levels() for _ in range(4000)]
    shares = [draws.count(n) / len(draws) for n in (1, 2, 3, 4)]
    expected = [(1 - full_share) / 3] * 3 + [full_share] if dropout < 1 else [0.25] * 4
    assert shares == pytest.approx(expected, abs=0.03)


def test_dropout_quantises_with_the_drawn_levels_in_training_and_all_in_eval():
    torch.manual_seed(14)
    rvq = ResidualQuantizer(dim=3, levels=4, size=8, dropout=1.0).train()
    z = torch.randn(2, 3, 4, 4)
    torch.manual_seed(15)
    n = rvq.training_levels()
    before = [book.cluster_size.clone() for book in rvq.levels]
    torch.manual_seed(15)
    result = rvq(z)
    assert result.codes.shape[1] == n
    changed = [not torch.equal(b, book.cluster_size) for b, book in zip(before, rvq.levels)]
    assert changed == [i < n for i in range(4)]  # levels past n neither quantise nor learn
    assert rvq.eval()(z).codes.shape[1] == 4
