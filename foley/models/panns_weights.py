"""Where the PANNs Wavegram-Logmel-CNN14 weights come from, and the one message users get when they are missing.

Kept free of torch so that config checks can use it at load time.
"""

from __future__ import annotations

from pathlib import Path

WEIGHTS_FILE = "Wavegram_Logmel_Cnn14_mAP=0.439.pth"
ZENODO_RECORD = "https://zenodo.org/records/3987831"
WEIGHTS_URL = f"{ZENODO_RECORD}/files/Wavegram_Logmel_Cnn14_mAP%3D0.439.pth"


def missing_weights_message(path: str | Path | None) -> str:
    """What is missing (no path given, or nothing at path), which file is expected and where to get it."""
    problem = "no PANNs weights were given" if path is None else f"PANNs weights not found at '{path}'"
    return (
        f"{problem}. The panns-wglm embedder needs the official checkpoint '{WEIGHTS_FILE}' of PANNs "
        f"(qiuqiangkong/audioset_tagging_cnn), released in Zenodo record 3987831 as {WEIGHTS_URL} ; "
        f"download it on a machine with network access and pass its path with --panns-weights "
        f"(or evaluate.panns_weights in the config)."
    )
