import subprocess
import sys

import pytest

from foley.config import builtin_config_names, load_config
from foley.util.errors import ConfigError

# DESIGN.md's table: (config, latent per level, levels, stacked prior map)
PAPER_CONFIGS = [
    ("dcase_baseline", (20, 86), 1, (20, 86)),
    ("rvq", (10, 43), 4, (40, 43)),
    ("rvq_stride42", (5, 86), 4, (20, 86)),
    ("rvq_stride24", (20, 22), 4, (80, 22)),
]


@pytest.mark.parametrize("name, latent, levels, stacked", PAPER_CONFIGS)
def test_paper_config_shapes(name, latent, levels, stacked):
    config = load_config(name)
    assert config.latent_shape == latent
    assert config.autoencoder.quantizer.levels == levels
    assert config.map_shape == stacked


def test_every_builtin_config_loads():
    names = builtin_config_names()
    assert {"quick", "dcase_baseline", "rvq", "rvq_stride42", "rvq_stride24"} <= set(names)
    for name in names:
        load_config(name)


def test_default_is_quick():
    assert load_config().name == "quick"


def test_overrides_and_numbers_written_without_a_dot(tmp_path):
    config = load_config("quick", ["prior.channel=128", "autoencoder.train.lr=3e-4", "data.root=/x"])
    assert config.prior.channel == 128 and config.autoencoder.train.lr == 3e-4 and config.data.root == "/x"


def test_layered_files(tmp_path):
    (tmp_path / "mine.yaml").write_text("include: rvq_stride42\nprior:\n  channel: 32\n")
    config = load_config(tmp_path / "mine.yaml")
    assert config.name == "mine" and config.prior.channel == 32 and config.autoencoder.strides == ((4, 2), (4, 2))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["prior.chanel=3"], "unknown config key 'prior.chanel'; did you mean 'prior.channel'"),
        (["autoencoder.strides=[[3, 2], [2, 2]]"], "power of two"),
        (["autoencoder.quantizer.levels=0"], "'autoencoder.quantizer.levels' must be at least 1"),
        (["autoencoder.quantizer.levels=2"], "must be 1 for type vq"),
        (["autoencoder.quantizer.type=pq"], "must be one of vq, rvq"),
        (["autoencoder.strides=[[1, 1]]", "prior.train.batch_size=64"], "attention needs"),
        (["prior.dropout=1.5"], "prior.dropout"),
        (["sample.temperature=0"], "sample.temperature"),
        (["prior.attention=yes please"], "must be true or false"),
        (["codes.stack=diagonal"], "freq, interleave"),
        (["data.eval_class_names=[a, b]"], "one name per class"),
        (["mel.fmax=20000"], "Nyquist"),
        (["device=tpu"], "auto, cpu, cuda"),
        (["noequals"], "key.path=value"),
        (["autoencoder.quantizer.dropout=0.5"], "'autoencoder.quantizer.dropout' needs several levels"),
        (["autoencoder.quantizer.type=rvq", "autoencoder.quantizer.levels=2", "autoencoder.quantizer.dropout=1.5"],
         "'autoencoder.quantizer.dropout' must be in [0, 1]"),
        (["autoencoder.quantizer.init=kmean"], "must be one of random, data, kmeans"),
        (["autoencoder.loss.mel_bands=0"], "'autoencoder.loss.mel_bands' must be at least 1"),
        (["autoencoder.loss.mel_bands=81"], "must not exceed mel.n_mels"),
        (["autoencoder.loss.mel_bands=4", "autoencoder.loss.band_weights=[1, 2]"], "needs one weight per band"),
        (["autoencoder.loss.mel_bands=2", "autoencoder.loss.band_weights=[0, 0]"], "positive sum"),
        (["autoencoder.loss.balancer_decay=1.0"], "balancer_decay"),
        (["sample.levels=2"], "'sample.levels' must not exceed autoencoder.quantizer.levels"),
    ],
)
def test_bad_values_fail_with_the_key_named(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_config("dcase_baseline", overrides)


def test_missing_key_and_bad_documents(tmp_path):
    (tmp_path / "partial.yaml").write_text("seed: 1\n")
    with pytest.raises(ConfigError, match="'device' is missing"):
        load_config(tmp_path / "partial.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "list.yaml")
    (tmp_path / "loop.yaml").write_text("include: loop.yaml\n")
    with pytest.raises(ConfigError, match="includes itself"):
        load_config(tmp_path / "loop.yaml")
    with pytest.raises(ConfigError, match="neither a YAML file nor a built-in config"):
        load_config("no_such_config")


def test_cli_unknown_key_fails_before_torch_is_imported_with_one_line(tmp_path):
    probe = ("import sys; from foley.stages.commands.cli import main; "
             "code = main(['run', '--out', sys.argv[1], '--set', 'prior.chanel=3']); "
             "print('torch' in sys.modules, code); sys.exit(code)")
    proc = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "r")], capture_output=True, text=True)
    assert proc.stdout.split() == ["False", "2"]
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "foley: error: unknown config key 'prior.chanel'; did you mean 'prior.channel'?"
    ]
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("name", ["quick", "dcase_baseline", "rvq", "rvq_stride42", "rvq_stride24"])
def test_codec_options_are_off_in_the_builtin_configs(name):
    config = load_config(name)
    assert config.autoencoder.quantizer.dropout == 0.0 and config.autoencoder.quantizer.init in ("random", "data")
    loss = config.autoencoder.loss
    assert (loss.mel_bands, loss.band_weights, loss.balancer) == (1, (), False) and config.sample.levels == 0


@pytest.mark.parametrize("name", ["dcase_baseline", "rvq", "rvq_stride42", "rvq_stride24"])
def test_the_paper_configs_keep_the_baselines_prior_and_sampler(name):
    config = load_config(name)
    prior, train, sample = config.prior, config.prior.train, config.sample
    assert (prior.label_dropout, prior.label_channels, sample.guidance, sample.best_of) == (0.0, 1, 1.0, 1)
    assert (train.schedule, train.warmup_steps, config.codes.stack) == ("constant", 0, "freq")


def test_the_demo_config_guides_its_sampler():
    config = load_config("quick")
    assert (config.prior.label_dropout, config.prior.label_channels, config.sample.guidance) == (0.1, 8, 1.25)
    assert (config.sample.best_of, config.sample.best_of_by, config.amp) == (2, "loudness", "auto")
    assert (load_config("toy").amp, load_config("dcase_baseline").sample.best_of_by) == (False, "prior")


def test_the_demo_prior_trains_20_epochs_on_the_demo_and_on_a_few_hundred_recordings():
    from foley.train.schedule import planned

    train = load_config("quick").prior.train
    assert [planned(train, maps).epochs for maps in (1260, 301, 5000)] == [20, 20, 6]  # 5,000 maps: 6 epochs make 1,700 steps


def test_the_toy_config_is_the_tests_toy_run():
    from conftest import TOY

    assert load_config("toy").replace(name="quick") == load_config("quick", TOY)
