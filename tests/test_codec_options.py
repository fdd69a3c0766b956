"""A toy RVQ run with every codec option on (k-means init, quantizer dropout, mel bands, loss
balancer) through the `foley` command: per-band losses, per-level codes statistics, reconstruction
per number of levels, floors per level, decoding with fewer levels, and the codes in `foley compare`."""

import csv
import json

import numpy as np
import pytest
import torch
from conftest import TOY

from foley.models.builders import load_autoencoder
from foley.quantize.stacking import unstack_levels
from foley.quantize.statistics import code_statistics
from foley.stages.commands.cli import main
from foley.util.checkpoint import load_checkpoint, save_checkpoint

OPTIONS = [
    "autoencoder.quantizer.levels=3", "autoencoder.quantizer.dropout=0.5", "autoencoder.quantizer.init=kmeans",
    "autoencoder.loss.mel_bands=4", "autoencoder.loss.balancer=true", "autoencoder.loss.band_weights=[1, 1, 2, 2]",
]


def foley(run, overrides, *args):
    return main(["run", "--quiet", "--out", str(run), *args, *[item for o in overrides for item in ("--set", o)]])


def _details(run, stage):
    return json.loads((run / stage / "manifest.json").read_text())["details"]


@pytest.fixture(scope="module")
def options_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("options") / "toy"
    assert foley(run, TOY + OPTIONS) == 0
    return run


def test_each_bands_loss_and_the_balancer_scales_are_logged(options_run):
    rows = list(csv.DictReader(open(options_run / "train_vqvae" / "metrics.csv")))
    assert len(rows) == 2
    for band in range(4):
        assert np.isfinite(float(rows[-1][f"recon/band_{band}"])) and np.isfinite(float(rows[-1][f"val/recon/band_{band}"]))
        assert float(rows[-1][f"balancer/scale_band_{band}"]) > 0
    assert {"recon/mse", "vq/commitment", "vq/perplexity_l2", "vq/unused_l2"} <= set(rows[0])


def test_extract_codes_reports_reconstruction_and_spending_per_number_of_levels(options_run):
    details = _details(options_run, "extract_codes")
    errors = details["reconstruction_mse_by_levels"]
    assert set(errors) == {"train", "val"} and all(len(v) == 3 for v in errors.values())
    assert len(details["entropy_bits_per_code"]) == len(details["perplexity"]) == len(details["unused_codes"]) == 3
    table = list(csv.DictReader(open(options_run / "extract_codes" / "levels.csv")))
    assert [r["levels"] for r in table] == ["1", "2", "3"]
    assert float(table[2]["bitrate_bps"]) == pytest.approx(details["bitrate_bps"], abs=1e-3)
    assert float(table[0]["recon_mse_val"]) == pytest.approx(errors["val"][0], abs=1e-6)
    model, _ = load_autoencoder(options_run / "train_vqvae" / "vqvae.pt")
    assert model.quantizer.dropout == 0.5 and model.levels == 3


def test_evaluate_scores_the_floor_per_number_of_levels_and_reports_the_codes(options_run):
    floors = {r["floor"] for r in csv.DictReader(open(options_run / "evaluate" / "floors.csv"))}
    assert floors == {"vocoder", "reconstruction", "reconstruction_1", "reconstruction_2"}
    report = (options_run / "evaluate" / "report.md").read_text()
    assert "reconstruction floor, first 1 levels" in report and "## Codes per quantizer level" in report
    details = _details(options_run, "extract_codes")
    fads = _details(options_run, "evaluate")["floors_mean_fad"]
    row = f"| 1 | {details['bitrate_bps_per_level'][0]:.1f} | {details['entropy_bitrate_bps_per_level'][0]:.1f} |"
    assert row in report and f"{fads['reconstruction_1']:.3f} |" in report


def test_compare_lists_each_runs_codes(options_run, tmp_path):
    assert main(["compare", str(options_run), "--out", str(tmp_path), "-q"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "codes_comparison.csv")))
    details = _details(options_run, "extract_codes")
    assert rows[0]["run"] == "toy" and rows[0]["levels"] == "3" and rows[0]["recon_mse_split"] == "val"
    assert float(rows[0]["bitrate_bps"]) == pytest.approx(details["bitrate_bps"], abs=0.05)
    assert rows[0]["entropy_bits_per_code"].count(" / ") == 2 and rows[0]["reconstruction_floor_fad_by_levels"].count(" / ") == 2
    assert "## Codes per run" in (tmp_path / "fad_comparison.md").read_text()


def test_sample_levels_decodes_the_first_levels_only(options_run):
    assert foley(options_run, TOY + OPTIONS + ["sample.levels=1"]) == 0
    assert _details(options_run, "sample")["levels_decoded"] == 1
    model, _ = load_autoencoder(options_run / "train_vqvae" / "vqvae.pt")
    maps = torch.from_numpy(np.load(options_run / "sample" / "codes.npy")).long()
    with torch.no_grad():
        expected = model.decode_codes(unstack_levels(maps, 3, "freq")[:, :1]).numpy()
    np.testing.assert_allclose(np.load(options_run / "sample" / "mels.npy"), expected, atol=1e-5)


def test_a_checkpoint_from_before_the_options_loads_with_them_off(options_run, tmp_path):
    payload = load_checkpoint(options_run / "train_vqvae" / "vqvae.pt")
    del payload["model_config"]["autoencoder"]["loss"], payload["model_config"]["autoencoder"]["quantizer"]["dropout"]
    save_checkpoint(tmp_path / "old.pt", payload)
    model, section = load_autoencoder(tmp_path / "old.pt")
    assert section.quantizer.dropout == 0.0 and section.loss.mel_bands == 1 and model.levels == 3


def test_code_statistics_on_a_hand_made_map():
    codes = torch.tensor([[[[0, 0], [1, 1]], [[2, 2], [2, 2]]]])  # 1 clip, 2 levels of 2 x 2, codebook of 4
    stats = code_statistics(codes, size=4, seconds=2.0)
    assert stats["bitrate_bps_per_level"] == [4.0, 4.0] and stats["bitrate_bps"] == 8.0  # 4 codes x 2 bits / 2 s
    assert stats["entropy_bits_per_code"] == [1.0, 0.0] and stats["entropy_bitrate_bps_per_level"] == [2.0, 0.0]
    assert stats["entropy_bitrate_bps"] == 2.0 and stats["perplexity"] == pytest.approx([2.0, 1.0])
    assert stats["unused_codes"] == [2, 3]
