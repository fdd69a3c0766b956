"""The small page `foley generate` writes beside the clips it made: a spectrogram and a player per clip."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from foley.config import MelConfig
from foley.evaluate.html import page, section
from foley.stages.report.listen import Clip, ClipSet, render_sets
from foley.util.atomic import write_text_atomic


def write_clips_page(path: str | Path, clips: Sequence[Path], title: str, subtitle: str, mel: MelConfig) -> Path:
    """Write the page `path` for the clips (pictures in <page name>_files/ beside it); returns its path."""
    path = Path(path)
    images = path.parent / f"{path.stem}_files"
    shutil.rmtree(images, ignore_errors=True)
    rows = render_sets([ClipSet("clips", tuple(Clip(c.stem, Path(c)) for c in clips), len(clips))], path.parent, images, mel)
    write_text_atomic(path, page(title, subtitle, [("clips", "Clips")], section("clips", "Clips", rows)))
    return path
