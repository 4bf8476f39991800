"""F0 extraction (audiolvm.core.pitch) and pitch / speech-quality metrics (audiolvm.eval.pitch)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from audiolvm.core import pitch as pitch_lib
from audiolvm.core.audio import load_audio
from audiolvm.core.pitch import (
    PitchSettings,
    extract_pitch,
    f0_range,
    hz_to_cents,
    log_f0_stats,
    map_log_f0,
    median_f0,
    num_frames,
)
from audiolvm.eval.pitch import PitchReport, pitch_metrics, speaker_median_f0, speech_quality

SR = 16000
SPEECH = Path(__file__).resolve().parents[1] / "data" / "speech" / "wav48_silence_trimmed"
EDGE = 10  # frames (40 ms at hop 64) at each end where an extractor may not yet see a full period


def tone(f0: float, seconds: float = 1.0, harmonics: int = 5) -> np.ndarray:
    """A harmonic tone at ``f0`` Hz, harmonic k+1 at amplitude 0.3 * 0.6**k: (T,) float64 at 16 kHz."""
    t = np.arange(round(seconds * SR)) / SR
    return sum(0.3 * 0.6**k * np.sin(2 * np.pi * f0 * (k + 1) * t) for k in range(harmonics))


@pytest.mark.parametrize("method", ["dio", "harvest"])
@pytest.mark.parametrize("f0", [120.0, 220.0])
def test_extractor_recovers_a_harmonic_tone(method: str, f0: float) -> None:
    est, voiced = extract_pitch(tone(f0), PitchSettings(method=method))
    assert est.dtype == np.float32 and voiced.dtype == bool
    assert voiced[EDGE:-EDGE].mean() >= 0.9
    assert abs(np.median(est[voiced]) / f0 - 1) < 0.01
    assert (est[~voiced] == 0).all()


@pytest.mark.slow
def test_pyin_recovers_a_harmonic_tone() -> None:
    est, voiced = extract_pitch(tone(220.0, seconds=0.5), PitchSettings(method="pyin"))
    assert voiced[EDGE:-EDGE].mean() >= 0.9
    assert abs(np.median(est[voiced]) / 220.0 - 1) < 0.01


@pytest.mark.parametrize("method", ["dio", "harvest"])
def test_silence_and_white_noise_are_unvoiced(method: str) -> None:
    noise = np.random.default_rng(0).standard_normal(2 * SR) * 0.1
    for wave in (np.zeros(2 * SR), noise):
        _, voiced = extract_pitch(wave, PitchSettings(method=method))
        assert voiced.mean() <= 0.05


def test_quiet_stretch_is_unvoiced_by_the_energy_gate() -> None:
    """A tone whose second half is 60 dB down: only the loud half stays voiced (silence_db = 45)."""
    wave = tone(150.0)
    wave[SR // 2:] *= 1e-3
    _, voiced = extract_pitch(wave, PitchSettings())
    half = num_frames(SR, 64) // 2
    assert voiced[EDGE:half - EDGE].mean() >= 0.9 and not voiced[half + EDGE:].any()


@pytest.mark.parametrize("length", [0, 1, 63, 64, 65, 1000, 16000, 16001])
def test_frame_count_is_length_over_hop_plus_one(length: int) -> None:
    f0, voiced = extract_pitch(tone(200.0, length / SR), PitchSettings(hop=64))
    assert len(f0) == len(voiced) == num_frames(length, 64) == length // 64 + 1


def test_octave_jumps_are_moved_back_and_short_islands_dropped() -> None:
    settings = PitchSettings()  # 150 ms octave window, 25 ms islands = 7 frames at hop 64
    f0 = np.full(100, 200.0)
    f0[40:45], f0[60:63] = 400.0, 101.0  # a doubled and a (nearly) halved stretch
    assert np.allclose(pitch_lib._fix_octaves(f0, settings)[[42, 61]], [200.0, 202.0])
    voiced = np.zeros(40, dtype=bool)
    voiced[5:11], voiced[20:27] = True, True  # 6 frames (24 ms) and 7 frames (28 ms)
    kept = pitch_lib._drop_islands(voiced, settings)
    assert not kept[5:11].any() and kept[20:27].all()


def test_settings_key_is_stable_and_covers_every_field() -> None:
    base = PitchSettings()
    assert base.key() == PitchSettings().key() and base.key().startswith("dio-16000-64-")
    assert base.key().replace("-", "").isalnum()  # safe in a file name
    changed = [PitchSettings(hop=32), PitchSettings(fmax=500.0), PitchSettings(min_voiced_ms=20.0),
               PitchSettings(method="harvest"), PitchSettings(silence_db=40.0)]
    assert len({base.key(), *(s.key() for s in changed)}) == 1 + len(changed)
    with pytest.raises(ValueError, match="method='crepe'"):
        PitchSettings(method="crepe")


def test_log_f0_stats_pools_voiced_frames_and_rejects_none() -> None:
    f0 = np.array([100.0, 0.0, 200.0, 400.0], dtype=np.float32)
    voiced = f0 > 0
    mean, std = log_f0_stats(np.concatenate([f0, f0]), np.concatenate([voiced, voiced]))
    assert mean == pytest.approx(math.log(200.0)) and std == pytest.approx(math.log(2.0) * math.sqrt(2 / 3))
    with pytest.raises(ValueError, match="no voiced frame"):
        log_f0_stats(f0, np.zeros(4, dtype=bool))


def test_map_log_f0_reaches_the_target_stats_and_shifts_by_semitones() -> None:
    source = torch.log(torch.linspace(90.0, 160.0, 500, dtype=torch.float64))
    src = (source.mean().item(), source.std(unbiased=False).item())
    tgt = (math.log(210.0), 0.12)
    mapped = map_log_f0(source, src, tgt)
    assert mapped.mean().item() == pytest.approx(tgt[0], abs=1e-9)
    assert mapped.std(unbiased=False).item() == pytest.approx(tgt[1], abs=1e-9)
    shifted = map_log_f0(source, src, tgt, shift_semitones=-3.0)
    cents = hz_to_cents(torch.exp(shifted).median().item(), torch.exp(mapped).median().item())
    assert cents == pytest.approx(-300.0, abs=1e-6)
    per_item = map_log_f0(source.reshape(2, 250), (torch.tensor([[src[0]], [src[0]]]), src[1]), tgt)  # (B, 1) stats
    assert torch.allclose(per_item.reshape(-1), mapped)


def test_pitch_metrics_of_a_shifted_tone_and_of_silence() -> None:
    settings = PitchSettings()
    ref = tone(150.0)
    up = pitch_metrics(ref, tone(150.0 * 2 ** (100 / 1200))[:-37], settings)  # a little shorter: cropped
    assert up["f0_cents_median"] == pytest.approx(100.0, abs=10.0) and up["vde"] < 0.02
    assert up["f0_cents_p90"] >= up["f0_cents_median"]
    _, voiced = extract_pitch(ref, settings)
    silent = pitch_metrics(ref, np.zeros_like(ref), settings)
    assert silent["vde"] == pytest.approx(voiced.mean()) and silent["voiced_both"] == 0.0
    assert math.isnan(silent["f0_cents_median"])
    assert median_f0(ref, settings) == pytest.approx(150.0, rel=0.01) and math.isnan(median_f0(ref * 0, settings))
    medians = speaker_median_f0({"low": [tone(110.0, 0.6), tone(130.0, 0.3)], "mute": [ref * 0]}, settings)
    assert medians["low"] == pytest.approx(110.0, rel=0.01) and math.isnan(medians["mute"])  # pooled over frames


def test_report_pools_frames_across_items() -> None:
    """Pooled over frames, the long item (+100 cents) outweighs the short one (+300 cents): median ~100,
    where the mean of the two items' medians would be ~200."""
    report = PitchReport(PitchSettings(), quality=False)
    report.add("level 0", tone(150.0), tone(150.0 * 2 ** (100 / 1200)))
    item = report.add("level 0", tone(150.0, 0.3), tone(150.0 * 2 ** (300 / 1200), 0.3))
    assert item["f0_cents_median"] == pytest.approx(300.0, abs=10.0)
    row = report.summary()["level 0"]
    assert row["items"] == 2 and row["f0_cents_median"] == pytest.approx(100.0, abs=10.0)
    assert row["f0_cents_p90"] == pytest.approx(300.0, abs=15.0)
    assert "| level 0 | 2 |" in report.to_table()


def test_speech_quality_prefers_the_clean_signal() -> None:
    wave, rate = load_audio(next(SPEECH.glob("e01/*.flac")), SR)
    noisy = wave + np.random.default_rng(0).standard_normal(len(wave)).astype(np.float32) * 0.1
    clean, degraded = speech_quality(wave, wave, rate), speech_quality(wave, noisy, rate)
    assert clean["pesq_wb"] > degraded["pesq_wb"] + 1.0 and clean["stoi"] > degraded["stoi"] + 0.1
    at_22k = load_audio(next(SPEECH.glob("e01/*.flac")), 22050)[0]  # resampled to 16 kHz inside
    assert speech_quality(at_22k, at_22k, 22050)["pesq_wb"] == pytest.approx(clean["pesq_wb"], abs=0.1)


def test_speech_quality_gives_nan_when_pesq_finds_no_speech(caplog: pytest.LogCaptureFixture) -> None:
    silence = np.zeros(SR, dtype=np.float32)
    with caplog.at_level("WARNING", logger="audiolvm.eval.pitch"):
        scores = speech_quality(silence, silence, SR)
    assert math.isnan(scores["pesq_wb"]) and "pesq_wb not computed" in caplog.text


def test_f0_range_is_one_sd_either_side_of_the_mean_in_cents() -> None:
    lo, hi = f0_range((math.log(200.0), math.log(2.0) / 12))  # sd of one semitone
    assert hz_to_cents(hi, 200.0) == pytest.approx(100.0) and hz_to_cents(lo, 200.0) == pytest.approx(-100.0)
