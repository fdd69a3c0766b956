"""foley: class-conditional Foley sound generation and its evaluation.

The Python API (defined in foley.stages.api and foley.evaluate.folders; imported on first use, so
`import foley` stays light and the library never imports the pipeline):

    run(config, out=..., overrides=...) -> Run     run (or resume) the pipeline
    load_run(path) -> Run                          a finished run folder
    Run.generate(class_name, n, seed=...) -> Clips new clips of a class; Clips.write(folder)
    score_folder(generated, reference, embedder=..., protocol=...) -> FolderScores
    compare_runs(run_dirs, out_dir, labels=...)    the per-class comparison table and chart
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "run": "foley.stages.api",
    "load_run": "foley.stages.api",
    "Run": "foley.stages.api",
    "Clips": "foley.stages.api",
    "run_config": "foley.config",
    "compare_runs": "foley.stages.compare",
    "score_folder": "foley.evaluate.folders",
    "FolderScores": "foley.evaluate.folders",
}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'foley' has no attribute {name!r}")
    return getattr(importlib.import_module(_API[name]), name)
