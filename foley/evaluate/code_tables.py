"""What the codes spend and lose, per quantizer level, as report sections and comparison columns.

Both read the details extract_codes records in its manifest (foley.quantize.statistics: bitrate,
entropy, perplexity and unused codes per level; the reconstruction MSE with the first k levels)
and, where evaluate scored them, the reconstruction floors' mean FAD with the first k levels.
"""

from __future__ import annotations

from collections.abc import Mapping

CODE_COLUMNS = (
    "levels", "codebook_size", "bitrate_bps", "entropy_bitrate_bps", "entropy_bits_per_code", "perplexity",
    "unused_codes", "recon_mse", "recon_mse_split", "reconstruction_floor_fad", "reconstruction_floor_fad_by_levels",
)


def floor_fads_by_levels(floor_means: Mapping[str, float], levels: int) -> dict[int, float]:
    """Reconstruction floors' mean FAD by the number of levels decoded: `reconstruction` decodes all
    `levels`, `reconstruction_k` the first k."""
    fads = {}
    for floor, fad in floor_means.items():
        if floor == "reconstruction":
            fads[levels] = fad
        elif floor.startswith("reconstruction_"):
            fads[int(floor.rsplit("_", 1)[1])] = fad
    return fads


def _split(details: Mapping) -> str | None:
    """The split whose reconstruction error is reported: the held-out one when there is one."""
    errors = details.get("reconstruction_mse_by_levels", {})
    return "val" if "val" in errors else "train" if "train" in errors else None


def _joined(values: list, digits: int) -> str:
    return " / ".join(f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in values)


def levels_section(details: Mapping, floor_fads: Mapping[int, float]) -> list[str]:
    """The report's markdown section: one row per number of levels k = 1..L; `floor_fads` maps k to
    the reconstruction floor's mean FAD decoding the first k levels, where evaluate scored it."""
    lines = ["## Codes per quantizer level", ""]
    if "bitrate_bps_per_level" not in details:
        return lines + ["Not recorded: this run's extract_codes predates the per-level statistics; re-run it "
                        "(foley run --stages extract_codes --force).", ""]
    levels, size = details["levels"], details["codebook_size"]
    height, width = details["level_shape"]
    errors = details["reconstruction_mse_by_levels"]
    lines += [
        f"{levels} level(s) of {height} x {width} codes from {size}-code codebooks (extract_codes over the training "
        "clips). Bitrates of the first k levels: fixed-length codes (log2 of the codebook size per code) and the "
        "codes' empirical entropy; entropy, perplexity and unused codes of level k itself; reconstruction MSE of "
        "the log-mel decoded from the first k levels; reconstruction floor FAD (as above) decoding the first k levels.",
        "",
        "| first k levels | bitrate (bit/s) | entropy bitrate (bit/s) | level k: entropy (bits/code) | perplexity | "
        "unused codes | " + " | ".join(f"recon MSE ({split})" for split in errors) + " | reconstruction floor FAD |",
        "|---|---|---|---|---|---|" + "---|" * len(errors) + "---|",
    ]
    for k in range(1, levels + 1):
        cells = [
            str(k), f"{sum(details['bitrate_bps_per_level'][:k]):.1f}",
            f"{sum(details['entropy_bitrate_bps_per_level'][:k]):.1f}", f"{details['entropy_bits_per_code'][k - 1]:.3f}",
            f"{details['perplexity'][k - 1]:.1f}", str(details["unused_codes"][k - 1]),
            *(f"{values[k - 1]:.4f}" for values in errors.values()),
            f"{floor_fads[k]:.3f}" if k in floor_fads else "not scored",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def code_columns(details: Mapping, floor_fads: Mapping[int, float]) -> dict[str, str]:
    """One run's comparison columns (CODE_COLUMNS), empty where the run did not record them."""
    if "bitrate_bps_per_level" not in details:
        return {column: "" for column in CODE_COLUMNS}
    split, levels = _split(details), details["levels"]
    errors = details["reconstruction_mse_by_levels"].get(split, [])
    return {
        "levels": str(levels),
        "codebook_size": str(details["codebook_size"]),
        "bitrate_bps": f"{details['bitrate_bps']:.1f}",
        "entropy_bitrate_bps": f"{details['entropy_bitrate_bps']:.1f}",
        "entropy_bits_per_code": _joined(details["entropy_bits_per_code"], 3),
        "perplexity": _joined(details["perplexity"], 1),
        "unused_codes": _joined(details["unused_codes"], 0),
        "recon_mse": f"{errors[-1]:.4f}" if errors else "",
        "recon_mse_split": split or "",
        "reconstruction_floor_fad": f"{floor_fads[levels]:.3f}" if levels in floor_fads else "",
        "reconstruction_floor_fad_by_levels": _joined([floor_fads[k] for k in sorted(floor_fads)], 3)
        if len(floor_fads) > 1 else "",
    }
