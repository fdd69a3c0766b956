"""prepare on real-world folders: every entry accounted for, long recordings split without leakage."""

import csv
import json
import logging
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from test_formats import FORMATS, encoded, tone

from foley.audio.clips import read_clip, to_pcm16
from foley.audio.mel import log_mel
from foley.config import load_config
from foley.data import ingest
from foley.data.layout import Entry
from foley.stages.commands.cli import main
from foley.util.errors import DataError
from foley.vocoders.hifigan_task import ClipDataset
from foley.vocoders.hifigan_training import peak_normalize

DEV = ["DogBark", "Footstep", "GunShot", "Keyboard", "MovingMotorVehicle", "Rain", "Sneeze_Cough"]
EVAL = ["dog_bark", "footstep", "gunshot", "keyboard", "moving_motor_vehicle", "rain", "sneeze_cough"]
SR, CLIP = 22050, 88200


def noise(seconds: float, seed: int, level: float = 0.3) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-level, level, int(seconds * SR))


def layout(root, names, seconds=1.0, seed=0):
    for i, name in enumerate(names):
        (root / name).mkdir(parents=True, exist_ok=True)
        sf.write(root / name / "plain.wav", noise(seconds, seed + i), SR, subtype="PCM_16")
    return root


def prepare(run, dev, reference, *overrides):
    sets = [item for o in overrides for item in ("--set", o)]
    code = main(["run", "--quiet", "--stages", "prepare", "--out", str(run), "--data", str(dev), "--reference", str(reference),
                 *sets])
    return code, run / "prepare"


def rows(folder, name):
    with open(folder / name, newline="") as handle:
        return list(csv.DictReader(handle))


def zoo(folder):
    """Every kind of entry a user's class folder holds, with where it must end and why."""
    expected = {}
    for ext, fmt, subtype, rate in FORMATS:
        name = f"{fmt}_{subtype}.{ext}".lower()
        (folder / name).write_bytes(encoded(fmt, subtype, rate, tone(1.0, rate, channels=2)))
        expected[name] = ("used", "2 channels -> mono")
    (folder / "LOUD.WAV").write_bytes(encoded("WAV", "PCM_16", 44100, tone(4.0, 44100)))
    expected["LOUD.WAV"] = ("used", "resampled 44100 -> 22050 Hz (soxr HQ)")
    (folder / "recorder_take_7").write_bytes(encoded("FLAC", "PCM_16", SR, tone(2.0)))
    expected["recorder_take_7"] = ("used", "zero-padded 44100 -> 88200 samples")
    sf.write(folder / "long.wav", tone(40.0), SR)
    expected["long.wav"] = ("used", "cropped 882000 -> 88200 samples")
    sf.write(folder / "clipped.wav", np.sign(tone(4.0)), SR)
    expected["clipped.wav"] = ("used", "clipped: ")
    (folder / "truncated.wav").write_bytes(encoded("WAV", "PCM_16", SR, tone(4.0))[: 44 + 978 * 2])
    expected["truncated.wav"] = ("rejected", "truncated: the data chunk declares 88,200 frames")
    sf.write(folder / "silent.wav", np.zeros(CLIP), SR)
    expected["silent.wav"] = ("rejected", "silent: every sample is zero")
    sf.write(folder / "hiss.flac", noise(4.0, 9, level=10 ** (-75 / 20)), SR)
    expected["hiss.flac"] = ("rejected", "silent: peak -7")
    (folder / "broken.mp3").write_bytes(b"\0" * 300)
    expected["broken.mp3"] = ("rejected", "unreadable: ")
    (folder / "notes.txt").write_text("bark takes, garden, 2024")
    expected["notes.txt"] = ("skipped", "not audio: a .txt file")
    (folder / "session.xyz").write_bytes(bytes(range(256)) * 8)
    expected["session.xyz"] = ("skipped", "not audio: a .xyz file")
    (folder / "takes").mkdir()
    sf.write(folder / "takes" / "inner.wav", noise(1.0, 3), SR)
    expected["takes"] = ("skipped", "sub-folder")
    sf.write(folder / ".hidden.wav", noise(1.0, 4), SR)
    expected[".hidden.wav"] = ("skipped", "hidden file")
    (folder / "wav_pcm_16_copy.wav").write_bytes((folder / "wav_pcm_16.wav").read_bytes())
    expected["wav_pcm_16_copy.wav"] = ("skipped", f"duplicate: the same bytes as {folder / 'wav_pcm_16.wav'}")
    return expected


@pytest.mark.parametrize("workers", [0, 2])
def test_every_entry_of_a_class_folder_ends_in_exactly_one_csv(tmp_path, caplog, workers):
    dev, reference = layout(tmp_path / "dev", DEV), layout(tmp_path / "eval", EVAL, seed=20)
    expected = zoo(dev / "DogBark")
    (dev / "Dog_Bark").mkdir()
    (dev / "README.txt").write_text("my sounds")
    with caplog.at_level(logging.WARNING):
        code, out = prepare(tmp_path / "run", dev, reference, "data.max_rejected_fraction=0.5",
                            f"data.num_workers={workers}")
    assert code == 0
    assert "Dog_Bark/ (did you mean DogBark?), README.txt match(es) no class folder" in caplog.text

    found = {}
    for table in ("index.csv", "rejected.csv", "skipped.csv"):
        for row in rows(out, table):
            where = {"index.csv": "used", "rejected.csv": "rejected", "skipped.csv": "skipped"}[table]
            text = row["conversions"] + "; " + row["notes"] if where == "used" else row["reason"]
            assert found.setdefault(row["path"], (where, text))[0] == where  # a file's clips share one table
    entries = {str(p) for root in (dev, reference) for name in DEV + EVAL if (root / name).is_dir()
               for p in (root / name).iterdir()}
    assert set(found) == entries
    for name, (where, text) in expected.items():
        got_where, got_text = found[str(dev / "DogBark" / name)]
        assert (got_where, text in got_text) == (where, True), (name, got_where, got_text)

    details = json.loads((out / "manifest.json").read_text())["details"]
    assert details["files"] == {"used": len(FORMATS) + 4 + 7 + 7, "rejected": 4, "skipped": 5}
    assert details["rejected"] == {"silent": 2, "truncated": 1, "unreadable": 1}
    assert details["noted"] == {"clipped": 1}
    assert details["unmatched"] == {str(dev): ["Dog_Bark/", "README.txt"]}
    assert details["resample_method"].startswith("soxr HQ")
    mels = np.load(out / "mels.npy", mmap_mode="r")
    assert mels.shape == (len(rows(out, "index.csv")), 80, 344) and np.isfinite(mels).all()


def test_workers_give_the_same_cache_as_the_main_process(tmp_path):
    dev, reference = layout(tmp_path / "dev", DEV, seconds=5.0), layout(tmp_path / "eval", EVAL, seed=20)
    sf.write(dev / "Rain" / "stereo48k.ogg", np.stack([noise(3.0, 7), noise(3.0, 8)], 1), 48000, format="OGG")
    outs = [prepare(tmp_path / f"run{w}", dev, reference, f"data.num_workers={w}", "data.long_files=split")[1]
            for w in (0, 3)]
    np.testing.assert_array_equal(np.load(outs[0] / "mels.npy"), np.load(outs[1] / "mels.npy"))
    assert rows(outs[0], "index.csv") == rows(outs[1], "index.csv")


def long_recordings(dev, reference):
    """Rain: a 40 s recording, one with a silent stretch, and several to split; one recording also in eval/rain."""
    sf.write(dev / "Rain" / "forty.wav", noise(40.0, 1), SR, subtype="PCM_16")
    gap = noise(40.0, 2)
    gap[3 * CLIP : 4 * CLIP] = 0.0
    sf.write(dev / "Rain" / "gap.wav", gap, SR, subtype="PCM_16")
    for i in range(6):
        sf.write(dev / "Rain" / f"storm{i}.ogg", noise(13.0, 30 + i), SR, format="OGG")
    sf.write(reference / "rain" / "shared.wav", noise(10.0, 50), SR, subtype="PCM_16")
    (dev / "Rain" / "shared_copy.wav").write_bytes((reference / "rain" / "shared.wav").read_bytes())


def test_split_cuts_clips_with_offsets_and_keeps_each_source_on_one_side(tmp_path):
    dev, reference = layout(tmp_path / "dev", DEV), layout(tmp_path / "eval", EVAL, seed=20)
    long_recordings(dev, reference)
    code, out = prepare(tmp_path / "run", dev, reference, "data.long_files=split", "data.val_fraction=0.4")
    assert code == 0
    index = rows(out, "index.csv")
    by_path = {}
    for row in index:
        by_path.setdefault(row["path"], []).append(row)
    forty = by_path[str(dev / "Rain" / "forty.wav")]
    assert [int(r["offset"]) for r in forty] == [k * CLIP for k in range(10)]
    assert forty[3]["conversions"] == "clip 4 of 10 from 264,600 of 882,000 samples"
    gap = by_path[str(dev / "Rain" / "gap.wav")]
    assert [int(r["offset"]) for r in gap] == [k * CLIP for k in range(10) if k != 3]
    assert gap[0]["notes"] == "1 near-silent split clip(s) dropped (at 12.0 s)"
    storm = by_path[str(dev / "Rain" / "storm0.ogg")]  # 13 s: 3 clips, and the last 1 s is less than half a clip
    assert [int(r["offset"]) for r in storm] == [0, CLIP, 2 * CLIP]

    splits = {path: {r["split"] for r in clips} for path, clips in by_path.items()}
    assert all(len(s) == 1 for s in splits.values())  # no source on two sides
    rain = [p for p in splits if "/dev/Rain/" in p]
    assert {"train", "val"} <= {next(iter(splits[p])) for p in rain}
    assert splits[str(reference / "rain" / "shared.wav")] == {"reference"}
    assert str(dev / "Rain" / "shared_copy.wav") not in splits
    skipped = {r["path"]: r["reason"] for r in rows(out, "skipped.csv")}
    assert skipped[str(dev / "Rain" / "shared_copy.wav")].startswith("duplicate: the same bytes as ")

    shared = by_path[str(reference / "rain" / "shared.wav")]  # 10 s: 2 clips, and one ending at the end
    assert [int(r["offset"]) for r in shared] == [0, CLIP, 10 * SR - CLIP]
    written = [out / "reference" / "rain" / f"{int(r['row']):05d}.wav" for r in shared]
    assert set(written) < set((out / "reference" / "rain").iterdir())  # beside plain.wav's clip
    source, _ = sf.read(reference / "rain" / "shared.wav", dtype="int16")
    np.testing.assert_array_equal(sf.read(written[2], dtype="int16")[0], source[-CLIP:])

    mels = np.load(out / "mels.npy", mmap_mode="r")
    source, _ = sf.read(dev / "Rain" / "gap.wav", dtype="float32")
    dataset = ClipDataset([r["path"] for r in gap], SR, CLIP, [int(r["offset"]) for r in gap])
    mel = load_config("quick").mel
    for k in (0, 4):  # prepare's mel rows and the HiFi-GAN dataset's clips are the same slices of the source
        offset, row = int(gap[k]["offset"]), int(gap[k]["row"])
        clip = read_clip(dev / "Rain" / "gap.wav", SR, CLIP, offset).audio
        np.testing.assert_array_equal(clip, source[offset : offset + CLIP])
        torch.testing.assert_close(torch.from_numpy(np.array(mels[row])), log_mel(torch.from_numpy(clip), mel, SR))
        torch.testing.assert_close(dataset[k], peak_normalize(torch.from_numpy(clip)))


def test_reference_clips_are_the_clips_copied_or_converted(tmp_path):
    dev, reference = layout(tmp_path / "dev", DEV), layout(tmp_path / "eval", EVAL, seed=20)
    sf.write(reference / "gunshot" / "exact.wav", noise(4.0, 60), SR, subtype="PCM_16")
    sf.write(reference / "gunshot" / "wide.flac", np.stack([noise(6.0, 61), noise(6.0, 62)], 1), 44100, format="FLAC")
    code, out = prepare(tmp_path / "run", dev, reference)
    assert code == 0
    clips = {Path(r["path"]).name: out / "reference" / "gunshot" / f"{int(r['row']):05d}.wav"
             for r in rows(out, "index.csv") if r["class_name"] == "gunshot"}
    assert clips["exact.wav"].read_bytes() == (reference / "gunshot" / "exact.wav").read_bytes()
    for name in ("plain.wav", "wide.flac"):
        info = sf.info(clips[name])
        assert (info.format, info.subtype, info.channels, info.samplerate, info.frames) == ("WAV", "PCM_16", 1, SR, CLIP)
    expected = read_clip(reference / "gunshot" / "wide.flac", SR, CLIP).audio
    np.testing.assert_array_equal(sf.read(clips["wide.flac"], dtype="int16")[0], to_pcm16(expected))
    assert len(list((out / "reference").rglob("*.wav"))) == 9


def test_a_class_left_without_clips_and_too_many_rejections_fail_clearly(tmp_path, capsys):
    dev, reference = layout(tmp_path / "dev", DEV), layout(tmp_path / "eval", EVAL, seed=20)
    (dev / "Keyboard" / "plain.wav").unlink()
    (dev / "Keyboard" / "readme.md").write_text("to do")
    code, _ = prepare(tmp_path / "run", dev, reference)
    assert code == 2 and "class folder(s) Keyboard of" in capsys.readouterr().err
    sf.write(dev / "Keyboard" / "k.wav", np.zeros(100), SR)
    code, _ = prepare(tmp_path / "run2", dev, reference)
    assert code == 2 and "1 of 14 audio files (7%) are unusable, above data.max_rejected_fraction" in capsys.readouterr().err


def test_a_decoding_process_that_dies_is_a_clear_data_error(tmp_path):
    future = Future()
    future.set_exception(BrokenProcessPool("killed"))
    with pytest.raises(DataError, match="a decoding process died .* up to '.*a.wav'; run with --set data.num_workers=0"):
        ingest._result(Entry(tmp_path / "a.wav", 0, "train"), future)
