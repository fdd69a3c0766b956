"""Stages read what they declare: config sections through a view, upstream outputs by name."""

import subprocess
import sys
from dataclasses import replace

import pytest

from foley.config import load_config
from foley.stages import STAGE_NAMES
from foley.stages.artifacts import OUTPUTS, artifact
from foley.stages.context import StageContext
from foley.stages.pipeline import BY_NAME, STAGES
from foley.stages.runner import run_pipeline
from foley.stages.stage import Stage, config_view, section_tree
from foley.util.errors import RunError


def stage(**changes) -> Stage:
    return replace(Stage("probe", ("prior", "data.class_names"), ("extract_codes",), ("out.txt",), lambda c, x: {}),
                   **changes)


def test_the_pipeline_lists_every_stage_once_in_order():
    assert tuple(s.name for s in STAGES) == STAGE_NAMES
    for s in STAGES:
        assert set(s.upstream) <= set(STAGE_NAMES[: STAGE_NAMES.index(s.name)]), f"{s.name} reads a later stage"


def test_every_stage_declares_the_outputs_that_the_artifact_table_lists():
    assert tuple(OUTPUTS) == STAGE_NAMES
    for s in STAGES:
        assert s.outputs == OUTPUTS[s.name], s.name


IMPORT_PROBE = """
import importlib, pkgutil, sys
import foley.stages

def forget():
    for name in [m for m in sys.modules if m == "foley.stages" or m.startswith("foley.stages.")]:
        del sys.modules[name]

for module in sorted(m.name for m in pkgutil.walk_packages(foley.stages.__path__, "foley.stages.")):
    forget()
    try:
        importlib.import_module(module)
    except Exception as err:
        print("cannot be imported first:", module, type(err).__name__, err)
forget()
importlib.import_module("foley.stages.report")
print(sorted(m for m in sys.modules if m.startswith("foley.stages.") and not m.startswith("foley.stages.report")))
"""


def test_every_stages_module_imports_first_and_the_report_pages_import_no_stage():
    """No import cycle, whichever module a process imports first (imports at module top, the pipeline's
    stages included): the report pages, which evaluate writes, find a run's files through
    foley.stages.artifacts, never through the pipeline."""
    proc = subprocess.run([sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["['foley.stages.artifacts', 'foley.stages.manifest']"]


def test_a_view_gives_declared_sections_and_refuses_the_rest():
    config = load_config("quick")
    view = config_view(config, stage())
    assert view.prior is config.prior and view.name == "quick"
    assert view.data.class_names == config.data.class_names
    assert view.class_count == 7  # a property reading data.class_names through the view
    with pytest.raises(RunError, match="stage probe reads config key 'data.root' but does not declare it"):
        view.data.root
    with pytest.raises(RunError, match="config key 'audio'"):
        view.map_shape  # reads audio, mel and autoencoder
    with pytest.raises(RunError, match="config key 'seed'"):
        view.seed
    with pytest.raises(AttributeError, match="read-only"):
        view.seed = 3


def test_section_trees_merge_dotted_names():
    assert section_tree(("data.root", "data", "audio.sample_rate")) == {"data": True, "audio": {"sample_rate": True}}
    assert section_tree(("vocoder", "vocoder.type")) == {"vocoder": True}


def test_inputs_must_be_declared_upstream_outputs(tmp_path):
    ctx = StageContext(tmp_path, device=None, stage=stage(), upstream={"extract_codes": BY_NAME["extract_codes"]})
    assert ctx.input("extract_codes", "codes.npy") == tmp_path / "extract_codes" / "codes.npy"
    assert ctx.out == tmp_path / "probe"
    with pytest.raises(RunError, match="reads from prepare, which is not among its declared upstream stages"):
        ctx.input("prepare", "mels.npy")
    with pytest.raises(RunError, match="reads extract_codes/model.pt, which extract_codes does not declare"):
        ctx.input("extract_codes", "model.pt")
    with pytest.raises(RunError, match="has no finished train_prior stage"):
        artifact(tmp_path, "train_prior", "prior.pt")
    with pytest.raises(RunError, match="train_prior declares no output model.bin"):
        artifact(tmp_path, "train_prior", "model.bin")


def test_every_stage_of_a_toy_run_read_only_what_it_declared(toy_run):
    """The toy run (conftest) ran every stage through its view; each declared output exists."""
    for s in STAGES:
        for output in s.outputs:
            assert artifact(toy_run, s.name, output).exists(), f"{s.name}/{output}"


def test_a_stage_that_reads_an_undeclared_section_fails_and_says_which(tmp_path, monkeypatch):
    import foley.stages.pipeline as pipeline
    import foley.stages.runner as runner

    def reads_the_seed(config, ctx):
        return {"seed": config.seed}

    probe = Stage("prepare", ("data",), (), (), reads_the_seed)
    monkeypatch.setattr(runner, "STAGES", (probe,))
    monkeypatch.setattr(pipeline, "STAGES", (probe,))
    ctx = StageContext(tmp_path / "run", device=None, progress=False)
    with pytest.raises(RunError, match="stage prepare reads config key 'seed' but does not declare it"):
        run_pipeline(load_config("quick"), ctx, ("prepare",))


def test_a_stage_that_does_not_write_a_declared_output_fails(tmp_path, monkeypatch):
    import foley.stages.runner as runner

    probe = Stage("prepare", ("data",), (), ("mels.npy",), lambda config, ctx: {})
    monkeypatch.setattr(runner, "STAGES", (probe,))
    ctx = StageContext(tmp_path / "run", device=None, progress=False)
    with pytest.raises(RunError, match="stage prepare finished without writing its declared output"):
        run_pipeline(load_config("quick"), ctx, ("prepare",))
