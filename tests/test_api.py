"""The Python API: README's example runs as written on a finished toy run; the library never
imports the pipeline; the CLI is built on the same functions."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

import foley

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    text = README.read_text()
    marker = text.index("<!-- python-api-example -->")
    return re.search(r"```python\n(.*?)```", text[marker:], re.S).group(1)


def test_the_readme_example_runs_as_written(toy_run, tmp_path, capsys, monkeypatch):
    (tmp_path / "outputs").mkdir()
    (tmp_path / "outputs" / "quick").symlink_to(toy_run)
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_example(), "README.md", "exec"), {})
    assert "FAD per class: embedder builtin-mfcc-v1" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "outputs" / "more_barks").iterdir()) == ["0001.wav", "0002.wav", "0003.wav"]
    assert (tmp_path / "outputs" / "comparison" / "fad_comparison.md").is_file()


def test_generate_returns_the_runs_own_clips_for_its_seed(toy_run):
    run = foley.load_run(toy_run)
    clips = run.generate("GunShot", n=2)  # development-layout name, the run's seed
    assert clips.class_name == "gunshot" and clips.seed == run.config.seed and clips.audio.shape == (2, 88200)
    again = run.generate(2, n=1)  # by class id
    np.testing.assert_array_equal(again.audio[0], clips.audio[0])
    assert len(run.scores()) == 8 and run.scores()[-1]["class"] == "mean"


def test_importing_foley_loads_neither_the_pipeline_nor_torch():
    library = sorted(
        ".".join(p.relative_to(Path(foley.__file__).parent.parent).with_suffix("").parts).removesuffix(".__init__")
        for p in Path(foley.__file__).parent.rglob("*.py") if p.name != "__main__.py"
    )
    probe = ("import sys, importlib; import foley; light = 'torch' not in sys.modules; "
             f"[importlib.import_module(m) for m in {library!r}]; "
             "print(light, sorted(m for m in sys.modules if m.startswith('foley.stages')))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env={**os.environ})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split(maxsplit=1) == ["True", "[]\n"]


def test_the_api_names_resolve_and_unknown_names_are_attribute_errors():
    assert set(foley.__all__) >= {"run", "load_run", "score_folder", "compare_runs", "Run", "Clips"}
    for name in foley.__all__:
        assert getattr(foley, name) is not None
    try:
        foley.no_such_name
    except AttributeError as err:
        assert "no_such_name" in str(err)
    else:
        raise AssertionError("expected AttributeError")
