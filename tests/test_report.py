"""The HTML pages: a run's report.html, compare's fad_comparison.html and generate's clips page.

The pages are parsed here (every <audio>, <source> and <img> must name an existing file, nothing
may come from the network) and rendered by a real browser, headless Chromium, to a screenshot that
must not be blank. The browser part is skipped, with a message, only where no Chromium is installed.
"""

import csv
import json
import shutil
import subprocess
import tempfile
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from foley.evaluate.html import bar_td, heat_colour
from foley.evaluate.plots import SPECTROGRAM_RANGE, spectrogram_levels, spectrogram_png
from foley.stages.commands.cli import main
from foley.stages.manifest import output_files
from foley.stages.report.files import href
from foley.stages.report.scores import columns, matrices, score_table
from foley.stages.report.training import metric_panels

CLASSES = ["dog_bark", "footstep", "gunshot", "keyboard", "moving_motor_vehicle", "rain", "sneeze_cough"]
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")


class PageParser(HTMLParser):
    """Every src/href of the page, and per class block (div id="class-<name>") its players and spectrograms."""

    def __init__(self) -> None:
        super().__init__()
        self.sources: list[tuple[str, str]] = []  # (tag, src)
        self.links: list[str] = []
        self.images: list[dict] = []
        self.classes: dict[str, dict[str, int]] = {}
        self._class: str | None = None
        self._depth = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "div":
            if attrs.get("id", "").startswith("class-"):
                self._class, self._depth = attrs["id"].removeprefix("class-"), 0
                self.classes[self._class] = {"audio": 0, "spectrogram": 0}
            elif self._class is not None:
                self._depth += 1
        if tag in ("audio", "source", "img") and "src" in attrs:
            self.sources.append((tag, attrs["src"]))
        if tag == "img":
            self.images.append(attrs)
        if tag in ("a", "link") and "href" in attrs:
            self.links.append(attrs["href"])
        if self._class is not None and tag == "audio":
            self.classes[self._class]["audio"] += 1
        if self._class is not None and tag == "img" and attrs.get("class") == "spectrogram":
            self.classes[self._class]["spectrogram"] += 1

    def handle_endtag(self, tag):
        if tag == "div" and self._class is not None:
            if self._depth == 0:
                self._class = None
            else:
                self._depth -= 1


def parse_page(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text())
    return parser


def assert_self_contained(path: Path) -> PageParser:
    """Every <audio>, <source> and <img> of the page names an existing file by a relative link; no network."""
    page = parse_page(path)
    assert page.sources, f"{path} shows nothing"
    for tag, src in page.sources:
        assert "://" not in src and not src.startswith("/"), f"<{tag}> {src} is not a relative link"
        assert (path.parent / urllib.parse.unquote(src)).is_file(), f"<{tag}> {src} of {path} does not exist"
    for target in page.links:
        assert target.startswith("#") or (path.parent / urllib.parse.unquote(target)).is_file(), f"link {target} is broken"
    assert "http://" not in path.read_text() and "https://" not in path.read_text()
    return page


def browser() -> str:
    found = next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)
    if found is None:
        pytest.skip("no Chromium to render the page: install the Debian package chromium (apt-get install chromium; "
                    ".ci/run installs it)")
    return found


def screenshot(page: Path, png: Path) -> np.ndarray:
    """The page rendered by headless Chromium at 1280 x 2000, as grey levels."""
    with tempfile.TemporaryDirectory() as profile:
        command = [browser(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}",
                   "--window-size=1280,2000", page.absolute().as_uri()]
        subprocess.run(command, capture_output=True, timeout=300, check=True)
    assert png.is_file(), f"Chromium wrote no screenshot of {page}"
    return np.asarray(Image.open(png).convert("L"), dtype=np.float64)


def assert_not_blank(pixels: np.ndarray) -> None:
    assert pixels.shape == (2000, 1280)
    assert pixels.std() > 10, "the screenshot is (nearly) one colour"
    assert (pixels < 200).mean() > 0.02, "the screenshot is (nearly) all background"


# ---------------------------------------------------------------------------------------------
# Pictures and table cells


def test_spectrogram_levels_map_the_fixed_range_with_low_frequencies_at_the_bottom(tmp_path):
    low, high = SPECTROGRAM_RANGE
    mel = np.full((4, 400), low)
    mel[3] = high  # the highest mel bin, loudest
    mel[1, ::2], mel[1, 1::2] = low, high  # frames averaged in pairs: halfway
    levels = spectrogram_levels(mel)
    assert levels.shape == (4, 200) and levels.dtype == np.uint8
    assert (levels[0] == 255).all() and (levels[3] == 0).all() and (levels[2] == 128).all()
    assert (spectrogram_levels(np.full((2, 10), high + 5.0)) == 255).all()  # clipped
    spectrogram_png(mel, tmp_path / "s.png")
    picture = Image.open(tmp_path / "s.png")
    assert picture.mode == "P" and picture.size == (200, 4)
    assert (np.asarray(picture) == levels).all()
    from matplotlib import colormaps

    magma = np.round(np.array(colormaps["magma"](1.0)[:3]) * 255)
    assert (np.asarray(picture.convert("RGB"))[0, 0] == magma).all()


def test_bars_scale_with_the_value_and_draw_the_interval():
    cell = bar_td(3.0, 4.0, "3 [2, 4]", 2.0, 4.0)
    assert 'style="width:75.0%"' in cell and 'style="left:50.0%;width:50.0%"' in cell and "3 [2, 4]" in cell
    assert 'width:100.0%' in bar_td(9.0, 4.0, "9") and 'width:0.0%' in bar_td(1.0, 0.0, "1")
    assert heat_colour(0.0) == ("#ffffd9", "#111") and heat_colour(1.0) == ("#253494", "#fff")
    assert heat_colour(0.5) == ("#41b6c4", "#111") and heat_colour(float("nan"))[0] == "#ffffd9"
    assert heat_colour(0.25)[0] == "#a0dace"  # halfway from the first stop to the second: 160, 218.5, 206.5 rounded


def test_score_tables_show_every_column_known_or_not():
    rows = [
        {"class": "rain", "fad": "2.5", "ci_low": "2.0", "ci_high": "3.0", "kad": "0.75", "kad_ci_low": "", "kad_ci_high": "",
         "fad_inf": "", "novel_score": "0.125", "clips": "10", "embedder": "vggish", "reference": "clips in x"},
        {"class": "mean", "fad": "5.0", "ci_low": "4.0", "ci_high": "6.0", "kad": "1.5", "kad_ci_low": "", "kad_ci_high": "",
         "fad_inf": "", "novel_score": "0.25", "clips": "20", "embedder": "vggish", "reference": "clips in x"},
    ]
    shown, same, empty = columns(rows)
    assert [(c.name, c.kind) for c in shown] == [("class", "text"), ("fad", "bar"), ("kad", "bar"),
                                                 ("novel_score", "bar"), ("clips", "number")]
    assert shown[1].interval == ("ci_low", "ci_high") and shown[2].interval == ("kad_ci_low", "kad_ci_high")
    assert same == {"embedder": "vggish", "reference": "clips in x"} and empty == ["fad_inf"]
    html = score_table(rows)
    assert "2.5 [2, 3]" in html and 'style="width:50.0%"' in html and "novel_score" in html
    assert 'class="mean"' in html and "Columns without values in this run: fad_inf" in html


def test_links_are_relative_and_quoted(tmp_path):
    page_dir = tmp_path / "run" / "evaluate"
    assert href(tmp_path / "run" / "sample" / "a b#1.wav", page_dir) == "../sample/a%20b%231.wav"
    assert href(page_dir / "report_files" / "x.png", page_dir) == "report_files/x.png"


def test_class_matrices_are_read_per_block():
    rows = [{"generated \\ reference": g, "a": a, "b": b, "embedder": e}
            for e in ("x", "y") for g, a, b in (("a", "1.0", "4.0"), ("b", "3.0", "2.0"))]
    blocks = matrices(rows)
    assert [m.title for m in blocks] == ["embedder x", "embedder y"]
    assert blocks[0].rows == ("a", "b") and blocks[0].columns == ("a", "b")
    assert np.array_equal(blocks[1].values, [[1.0, 4.0], [3.0, 2.0]])


def test_training_columns_are_grouped_into_panels():
    rows = [{"epoch": "1", "step": "3", "loss": "2.0", "recon/mse": "1.5", "vq/perplexity_l0": "5", "vq/unused_l0": "2",
             "vq/perplexity_l1": "7", "accuracy": "0.5", "val/accuracy": "0.4", "lr": "0.001", "val/mel_l1": "nan"},
            {"epoch": "2", "step": "6", "loss": "1.0", "recon/mse": "0.5", "vq/perplexity_l0": "6", "vq/unused_l0": "1",
             "vq/perplexity_l1": "8", "accuracy": "0.6", "val/accuracy": "0.5", "lr": "0.0009", "val/mel_l1": "0.7"}]
    panels = {p.title: p for p in metric_panels(rows)}
    assert list(panels) == ["losses", "accuracy", "mel L1", "codebook perplexity per level", "unused codes per level",
                            "learning rate"]
    assert [c.name for c in panels["losses"].curves] == ["loss", "recon/mse"]
    assert [c.name for c in panels["codebook perplexity per level"].curves] == ["vq/perplexity_l0", "vq/perplexity_l1"]
    mel = panels["mel L1"].curves[0]
    assert mel.x.tolist() == [2.0] and mel.y.tolist() == [0.7]  # the epoch without validation left out


# ---------------------------------------------------------------------------------------------
# The run's page


def test_the_report_is_no_output_of_its_stage(tmp_path):
    for name in ("report.html", "report_files/rain/generated/001.png", "fad.csv", "floors/rain/0001.wav"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    assert list(output_files(tmp_path)) == ["fad.csv", "floors/rain/0001.wav"]


def test_evaluate_writes_the_report_with_clips_per_class_curves_and_codebook(toy_run):
    page_path = toy_run / "evaluate" / "report.html"
    page = assert_self_contained(page_path)
    assert list(page.classes) == CLASSES
    for name, counts in page.classes.items():
        assert counts["audio"] >= 2 and counts["spectrogram"] >= 1, name
    # generated (2), reference (3) and both floors (2 each) of every class, with a spectrogram each
    assert all(counts == {"audio": 9, "spectrogram": 9} for counts in page.classes.values())
    alts = [image.get("alt", "") for image in page.images]
    assert any("Autoencoder training curves" in alt for alt in alts) and any("Prior training curves" in alt for alt in alts)
    assert "codebook usage per level" in alts
    text = page_path.read_text()
    fad = next(r for r in csv.DictReader(open(toy_run / "evaluate" / "fad.csv")) if r["class"] == "rain")
    assert f"rain · FAD {float(fad['fad']):.4g}" in text
    for expected in ("embedder: builtin-mfcc-v1; protocol: dcase2023", "<th>generated \\ reference</th>",
                     "<td>bitrate_bps</td><td>220</td>", "<th>entropy_bits_per_code</th>", "<td>codebook_size</td><td>16</td>",
                     "No curves: train_vocoder wrote no metrics.csv (vocoder.type is griffinlim).",
                     "<td>torch</td>", "<th>fad</th>",
                     "<th>reference_id</th>", "Per class: clips 2, n_generated 20, n_reference 30",
                     "<td>evaluate</td><td>running</td>", "running: the stage had not finished when this page was built"):
        assert expected in text, expected


def test_foley_report_rebuilds_the_page_and_the_run_stays_up_to_date(toy_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(toy_run, run, ignore=shutil.ignore_patterns("cache", ".lock"))
    (run / "evaluate" / "report.html").unlink()
    manifests = {p: p.read_text() for p in run.glob("*/manifest.json")}
    assert main(["report", str(run), "-q"]) == 0
    assert_self_contained(run / "evaluate" / "report.html")
    text = (run / "evaluate" / "report.html").read_text()
    assert "<td>evaluate</td><td>complete</td>" in text and "running" not in text
    assert {p: p.read_text() for p in run.glob("*/manifest.json")} == manifests
    assert main(["run", "-q", "--out", str(run), "--config", str(run / "config.yaml")]) == 0  # its own config
    assert {p: p.read_text() for p in run.glob("*/manifest.json")} == manifests  # every stage skipped


def test_a_run_without_some_files_gets_a_page_with_notes(toy_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(toy_run, run, ignore=shutil.ignore_patterns("cache", ".lock", "floors", "codes.npy"))
    config = yaml.safe_load((run / "config.yaml").read_text())
    del config["prior"], config["data"]["synthetic"]  # as in a run made before keys were added: not read
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    for name in ("fad.csv", "fad_matrix.csv", "floors.csv"):
        (run / "evaluate" / name).unlink()
    (run / "train_prior" / "metrics.csv").unlink()
    assert main(["report", str(run), "-q"]) == 0
    page_path = run / "evaluate" / "report.html"
    text = page_path.read_text()
    for expected in ("Not shown: evaluate/fad.csv is absent.", "Not shown: evaluate/fad_matrix.csv is absent.",
                     "No floors&#x27; clips", "No curves: train_prior wrote no metrics.csv.",
                     "No usage histogram: extract_codes/codes.npy is missing."):
        assert expected in text, expected
    page = assert_self_contained(page_path)
    assert all(counts["audio"] == 5 for counts in page.classes.values())  # generated 2, reference 3


def test_files_of_other_stages_get_their_sections(toy_run, tmp_path):
    """Class accuracy, its confusion, KAD columns and per-level code tables, in the formats their stages write."""
    run = tmp_path / "run"
    shutil.copytree(toy_run, run, ignore=shutil.ignore_patterns("cache", ".lock", "floors"))
    evaluate = run / "evaluate"
    rows = list(csv.DictReader(open(evaluate / "fad.csv")))
    _write(evaluate / "fad.csv", [{**r, "kad": f"{i + 0.5:.6f}", "kad_ci_low": f"{i:.6f}", "kad_ci_high": f"{i + 1:.6f}"}
                                  for i, r in enumerate(rows)])
    _write(evaluate / "class_accuracy.csv", [{"set": "generated", "class": c, "clips": 2, "correct": 1, "accuracy": "0.500000",
                                              "classifier": "abc"} for c in CLASSES + ["mean"]])
    confusion = [{"set": "generated", "true \\ predicted": c, **{d: int(c == d) * 2 for d in CLASSES}} for c in CLASSES]
    _write(evaluate / "class_confusion.csv", confusion)
    _write(run / "extract_codes" / "levels.csv", [{"levels": 1, "bitrate_bps": "110.000", "recon_mse_train": "0.5"},
                                                  {"levels": 2, "bitrate_bps": "220.000", "recon_mse_train": "0.25"}])
    manifest_path = run / "extract_codes" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["details"]["entropy_bitrate_bps_per_level"] = [1.5, 2.5]
    manifest_path.write_text(json.dumps(manifest))
    assert main(["report", str(run), "-q"]) == 0
    text = (evaluate / "report.html").read_text()
    assert "<th>kad</th>" in text and "1.5 [1, 2]" in text
    assert "Class accuracy" in text and "<th>accuracy</th>" in text and "classifier: abc" in text
    assert "true \\ predicted" in text and text.count("heat marked") == 7 + 7  # each row's best: FAD matrix and confusion
    assert "Decoding the first k levels (extract_codes/levels.csv)" in text and "recon_mse_train" in text
    assert "<th>entropy_bitrate_bps_per_level</th>" in text and "<td>level_shape</td>" in text
    assert_self_contained(evaluate / "report.html")


def _write(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


# ---------------------------------------------------------------------------------------------
# Comparison and generate pages


def test_comparison_page_holds_table_two_and_the_runs_clips(toy_run, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(toy_run, other, ignore=shutil.ignore_patterns("cache", ".lock", "floors"))
    out = tmp_path / "comparison"
    assert main(["compare", str(toy_run), str(other), "--out", str(out), "--labels", "first,second", "-q"]) == 0
    page = assert_self_contained(out / "fad_comparison.html")
    text = (out / "fad_comparison.html").read_text()
    assert "<th>class</th><th>first</th><th>second</th>" in text and "fad_comparison.png" in text
    mean = next(r for r in csv.DictReader(open(toy_run / "evaluate" / "fad.csv")) if r["class"] == "mean")
    assert text.split("<td>average</td>")[1].split("</tr>")[0].count(f"{float(mean['fad']):.4g}") == 2
    assert list(page.classes) == CLASSES and all(c == {"audio": 4, "spectrogram": 4} for c in page.classes.values())
    sources = {src for tag, src in page.sources if tag == "source"}
    assert any("other/sample/samples/rain/0001.wav" in s for s in sources)


def test_generate_writes_a_page_for_its_clips(toy_run, tmp_path):
    out = tmp_path / "gen"
    assert main(["generate", str(toy_run), "--class", "rain", "-n", "2", "--out", str(out), "-q"]) == 0
    page = assert_self_contained(out / "rain.html")
    assert sorted(src for tag, src in page.sources if tag == "source") == ["rain/0001.wav", "rain/0002.wav"]
    assert len([src for tag, src in page.sources if tag == "img"]) == 2


# ---------------------------------------------------------------------------------------------
# In a real browser


@pytest.mark.slow
def test_the_pages_render_in_a_browser(toy_run, tmp_path):
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    with pytest.raises(AssertionError, match="one colour"):
        assert_not_blank(screenshot(blank, tmp_path / "blank.png"))
    assert_not_blank(screenshot(toy_run / "evaluate" / "report.html", tmp_path / "report.png"))
    other = tmp_path / "other"
    shutil.copytree(toy_run, other, ignore=shutil.ignore_patterns("cache", ".lock", "floors"))
    assert main(["compare", str(toy_run), str(other), "--out", str(tmp_path / "comparison"), "-q"]) == 0
    assert_not_blank(screenshot(tmp_path / "comparison" / "fad_comparison.html", tmp_path / "comparison.png"))
