"""The pipeline's stages, one module each, in the order they run."""

STAGE_NAMES = ("prepare", "train_vqvae", "extract_codes", "train_prior", "train_vocoder", "sample", "evaluate")
