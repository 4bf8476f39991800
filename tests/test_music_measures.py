"""The music measures: they rank rendered music above its phase-scrambled copy above noise, the Fréchet
distance has its exact values, and continuations in a prompt's key are recognised."""

from __future__ import annotations

import shutil
from pathlib import Path

import librosa
import numpy as np
import pytest

from audiolvm.eval.music import (
    FrameStats,
    MusicReport,
    chroma_shares,
    flatness_frames,
    frechet_distance,
    key_agreement,
    log_mel_frames,
    white_noise,
)

RATE = 16000
PROGRESSION = [(60, 64, 67), (65, 69, 72), (67, 71, 74), (57, 60, 64), (62, 65, 69), (67, 71, 74), (60, 64, 67)]


def render_progression(tmp: Path, program: int, transpose: int = 0) -> np.ndarray:
    """A 7-chord progression (1 s per chord) played by General MIDI ``program`` through fluidsynth."""
    mido = pytest.importorskip("mido")
    from data_scripts import synth

    if shutil.which("fluidsynth") is None:
        pytest.skip("needs the fluidsynth program (apt-get install fluidsynth)")
    try:
        soundfont = synth.find_soundfont()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    track = mido.MidiTrack([mido.Message("program_change", program=program, time=0)])
    for chord in PROGRESSION:
        for note in chord:
            track.append(mido.Message("note_on", note=note + transpose, velocity=90, time=0))
        for i, note in enumerate(chord):
            track.append(mido.Message("note_off", note=note + transpose, velocity=0, time=480 if i == 0 else 0))
    midi = mido.MidiFile(ticks_per_beat=480)  # 120 bpm: 480 ticks = 0.5 s
    midi.tracks.append(track)
    path = tmp / f"progression_{program}_{transpose}.mid"
    midi.save(str(path))
    wave = synth.render_midi(path, soundfont, 44100, RATE)
    return wave[: int(len(PROGRESSION) * 0.5 * RATE)]


def shuffle_phases(wave: np.ndarray, n_fft: int = 256, seed: int = 0) -> np.ndarray:
    """The same short-time magnitudes with random phases: harmonic structure smeared, loudness kept."""
    spec = librosa.stft(wave, n_fft=n_fft, hop_length=n_fft // 4)
    phase = np.exp(2j * np.pi * np.random.default_rng(seed).random(spec.shape))
    return librosa.istft(np.abs(spec) * phase, hop_length=n_fft // 4, length=len(wave)).astype(np.float32)


def test_measures_rank_music_above_scrambled_phases_above_noise(tmp_path: Path) -> None:
    music = render_progression(tmp_path, program=0)  # piano
    scrambled, noise = shuffle_phases(music), white_noise([music])[0]
    chroma = [chroma_shares(w, RATE).mean() for w in (music, scrambled, noise)]
    flatness = [flatness_frames(w, RATE).mean() for w in (music, scrambled, noise)]
    assert chroma[0] > chroma[1] > chroma[2], chroma
    assert flatness[0] < flatness[1] < flatness[2], flatness
    # against another rendering of the progression (bright piano, a tone up) as the reference set
    report = MusicReport([render_progression(tmp_path, program=1, transpose=2)], RATE)
    fd = [report.add(name, [w]).mel_fd for name, w in (("music", music), ("scrambled", scrambled), ("noise", noise))]
    assert fd[0] < fd[1] < fd[2], fd
    assert report.rows[0].chroma == pytest.approx(chroma[0])


def test_frechet_distance_exact_values() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4000, 6)) @ rng.standard_normal((6, 6))
    a = FrameStats.of(x)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9 * np.trace(a.cov))
    # N(m1, diag(v1)) vs N(m2, diag(v2)): |m1 - m2|^2 + sum (sqrt v1 - sqrt v2)^2
    m1, m2, v1, v2 = rng.normal(size=4), rng.normal(size=4), rng.uniform(0.5, 2, 4), rng.uniform(0.5, 2, 4)
    exact = ((m1 - m2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()
    got = frechet_distance(FrameStats(m1, np.diag(v1), 2), FrameStats(m2, np.diag(v2), 2))
    assert got == pytest.approx(exact, rel=1e-10)
    # a rotated covariance: the distance is invariant to rotating both Gaussians together
    q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    rotated = frechet_distance(FrameStats(q @ m1, q @ np.diag(v1) @ q.T, 2),
                               FrameStats(q @ m2, q @ np.diag(v2) @ q.T, 2))
    assert rotated == pytest.approx(exact, rel=1e-8)
    with pytest.raises(ValueError, match="dimensions"):
        frechet_distance(a, FrameStats.of(x[:, :3]))


def test_log_mel_frechet_of_a_set_to_itself_is_zero_and_grows_with_noise() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(2 * RATE) / RATE
    clips = [(0.3 * np.sin(2 * np.pi * f * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t))).astype(np.float32)
             for f in (220.0, 277.2, 329.6)]
    ref = FrameStats.of([log_mel_frames(c, RATE) for c in clips])
    assert frechet_distance(ref, FrameStats.of([log_mel_frames(c, RATE) for c in clips])) < 1e-6
    fds = [frechet_distance(FrameStats.of([log_mel_frames(c + level * rng.standard_normal(len(c)).astype(np.float32),
                                                          RATE) for c in clips]), ref)
           for level in (0.001, 0.01, 0.1)]
    assert 0 < fds[0] < fds[1] < fds[2], fds


def test_key_agreement_tells_own_key_from_others() -> None:
    t = np.arange(RATE) / RATE

    def triad(root_hz: float, seed: int) -> np.ndarray:  # a major triad with random partial phases
        ph = np.random.default_rng(seed).random(3) * 2 * np.pi
        return sum(np.sin(2 * np.pi * root_hz * r * t + p) for r, p in zip((1, 1.26, 1.498), ph, strict=True))

    roots = (220.0, 261.6, 311.1, 370.0)
    prompts = [triad(r, 0).astype(np.float32) for r in roots]
    continuations = [triad(r * 2, 1).astype(np.float32) for r in roots]  # the same key an octave up
    result = key_agreement(prompts, continuations, RATE)
    assert result["own"] > 0.9 and result["other"] < 0.5 * result["own"], result
    with pytest.raises(ValueError, match="two"):
        key_agreement(prompts[:1], continuations[:1], RATE)
