"""Where VGGish's weights come from, and the one message users get when they are missing.

Kept free of torch so that config checks can use it at load time.
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS_FILE = "vggish-10086976.pth"
WEIGHTS_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth"


def missing_weights_message(path: str | Path | None) -> str:
    """What is missing (no path given, or nothing at path), which file is expected and where to get it."""
    problem = "no VGGish weights were given" if path is None else f"VGGish weights not found at '{path}'"
    return (
        f"{problem}. FAD with the vggish embedder needs torchvggish's '{WEIGHTS_FILE}', released at "
        f"{WEIGHTS_URL} ; download it on a machine with network access and pass its path with "
        f"--vggish-weights (or evaluate.vggish_weights in the config)."
    )
