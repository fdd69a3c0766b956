"""The models the benchmarks time, by size name: read by the argument parsers (choices, no torch
import) and by the benchmarks that build them (random weights; speed does not depend on them)."""

PRIOR_SIZES = {
    "small": dict(channel=64, kernel_size=5, n_block=2, n_res_block=2, res_channel=64, attention=True,
                  n_head=4, dropout=0.1, label_hidden=64),
    "baseline": dict(channel=256, kernel_size=5, n_block=4, n_res_block=4, res_channel=256, attention=True,
                     n_head=8, dropout=0.1, label_hidden=2048),  # the DCASE 2023 baseline's prior
}
VOCAB_SIZE = 512
N_CLASSES = 7
DCASE_MAP = (20, 86)
