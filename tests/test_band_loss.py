import pytest
import torch
import torch.nn.functional as F

from foley.models.autoencoder import named_losses
from foley.models.band_loss import MelBands, band_edges


@pytest.mark.parametrize("n_mels, bands, edges", [(80, 1, (0, 80)), (80, 4, (0, 20, 40, 60, 80)), (80, 3, (0, 27, 53, 80)),
                                                  (5, 5, (0, 1, 2, 3, 4, 5))])
def test_bands_are_contiguous_and_nearly_equal(n_mels, bands, edges):
    assert band_edges(n_mels, bands) == edges


def test_more_bands_than_bins_is_refused():
    with pytest.raises(ValueError, match="cannot cut 4 mel bins into 5 bands"):
        band_edges(4, 5)


@pytest.mark.parametrize("bands", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("weight", [1.0, 2.5])
def test_equal_weights_give_the_plain_mse(bands, weight):
    torch.manual_seed(0)
    recon, mel = torch.randn(3, 80, 11), torch.randn(3, 80, 11) * 3
    split = MelBands.equal(80, bands, (weight,) * bands)
    torch.testing.assert_close(split.combine(split.errors(recon, mel)), F.mse_loss(recon, mel))


def test_band_errors_and_weighted_loss_match_a_per_bin_weighted_mean():
    torch.manual_seed(1)
    recon, mel = torch.randn(2, 10, 7), torch.randn(2, 10, 7)
    split = MelBands.equal(10, 3, (1.0, 0.0, 4.0))  # bands of bins 0-2, 3-6, 7-9
    squared = (recon - mel) ** 2
    expected_bands = [squared[:, 0:3].mean(), squared[:, 3:7].mean(), squared[:, 7:10].mean()]
    errors = split.errors(recon, mel)
    for got, want in zip(errors, expected_bands):
        torch.testing.assert_close(got, want)
    per_bin = torch.tensor([1.0] * 3 + [0.0] * 4 + [4.0] * 3)
    expected = (squared.mean((0, 2)) * per_bin).sum() / per_bin.sum()
    torch.testing.assert_close(split.combine(errors), expected)


def test_named_losses_log_each_band_and_weight_the_reconstruction():
    torch.manual_seed(2)
    recon, mel, commitment = torch.randn(2, 8, 5), torch.randn(2, 8, 5), torch.tensor(0.5)
    plain = named_losses(recon, mel, commitment, 0.25)
    assert list(plain) == ["loss", "recon/mse", "vq/commitment"]
    torch.testing.assert_close(plain["loss"], F.mse_loss(recon, mel) + 0.125)
    split = MelBands.equal(8, 2, (3.0, 1.0))
    banded = named_losses(recon, mel, commitment, 0.25, split)
    assert list(banded) == ["loss", "recon/mse", "recon/band_0", "recon/band_1", "vq/commitment"]
    torch.testing.assert_close(banded["recon/mse"], plain["recon/mse"])
    torch.testing.assert_close(banded["loss"], 0.75 * banded["recon/band_0"] + 0.25 * banded["recon/band_1"] + 0.125)
