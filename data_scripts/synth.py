"""Render MIDI to audio with the ``fluidsynth`` command-line synthesizer and a General MIDI soundfont.

fluidsynth writes float WAV here (``-O float``: no clipping, no dither) and keeps rendering a few
seconds of silence after the MIDI file ends, so :func:`trim_tail` cuts the audio back to the
MIDI duration plus the notes' release (at most ``max_tail`` seconds).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from audiolvm.core.audio import load_audio

#: soundfonts tried in order when none is given: Debian fluid-soundfont-gm, timgm6mb-soundfont
SOUNDFONTS = (Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"), Path("/usr/share/sounds/sf2/TimGM6mb.sf2"))
SOUNDFONT_HELP = ("install one: sudo apt-get install fluid-soundfont-gm (FluidR3_GM, 148 MB) or "
                  "timgm6mb-soundfont (6 MB), or pip install pretty_midi (ships TimGM6mb.sf2); "
                  "or pass --soundfont PATH")  # fmt: skip


def pretty_midi_soundfont() -> Path | None:
    """``TimGM6mb.sf2`` inside the installed pretty_midi package (found without importing it)."""
    spec = importlib.util.find_spec("pretty_midi")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "TimGM6mb.sf2"
    return path if path.is_file() else None


def find_soundfont(path: str | Path | None = None) -> Path:
    """``path`` if given (it must exist), else the first installed of :data:`SOUNDFONTS`, else
    pretty_midi's TimGM6mb. Raises FileNotFoundError naming the packages that provide one."""
    if path is not None:
        if not Path(path).is_file():
            raise FileNotFoundError(f"--soundfont {path}: no such file; {SOUNDFONT_HELP}")
        return Path(path)
    for candidate in (*SOUNDFONTS, pretty_midi_soundfont()):
        if candidate is not None and candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no General MIDI soundfont found (looked for {', '.join(map(str, SOUNDFONTS))} "
                            f"and pretty_midi's TimGM6mb.sf2); {SOUNDFONT_HELP}")  # fmt: skip


def fluidsynth_binary() -> str:
    """The ``fluidsynth`` executable, or FileNotFoundError naming the package that provides it."""
    found = shutil.which("fluidsynth")
    if found is None:
        raise FileNotFoundError("fluidsynth is not on PATH; install it: sudo apt-get install fluidsynth")
    return found


def fluidsynth_version() -> str:
    """e.g. ``2.3.1``, from ``fluidsynth --version``."""
    out = subprocess.run([fluidsynth_binary(), "--version"], capture_output=True, text=True, check=False).stdout
    first = out.splitlines()[0] if out else ""
    return first.split()[-1] if first else "unknown"


def render_midi(
    midi: Path, soundfont: Path, synth_rate: int, rate: int, gain: float = 0.8, timeout: float = 600.0
) -> np.ndarray:
    """Render ``midi`` at ``synth_rate`` Hz, downmix to mono and resample to ``rate`` (soxr).

    Returns float32 (T,) at ``rate``. Raises RuntimeError with fluidsynth's message if it fails,
    TimeoutError if it is still rendering after ``timeout`` seconds (fluidsynth renders until every
    note has ended, so a note that never ends would make it write forever).
    """
    with tempfile.TemporaryDirectory(prefix="audiolvm_fs_") as tmp:
        wav = Path(tmp) / "render.wav"
        cmd = [fluidsynth_binary(), "-ni", "-q", "-g", str(gain), "-r", str(synth_rate), "-O", "float",
               "-F", str(wav), str(soundfont), str(midi)]  # fmt: skip
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise TimeoutError(f"{midi}: fluidsynth still rendering after {timeout:.0f} s (a note that "
                               "never ends?); check the MIDI file's note_on/note_off pairs") from exc  # fmt: skip
        if proc.returncode != 0 or not wav.is_file():
            raise RuntimeError(f"{midi}: fluidsynth failed (exit {proc.returncode}): "
                               f"{(proc.stderr or proc.stdout).strip()[-500:]}; command: {' '.join(cmd)}")  # fmt: skip
        wave, _ = load_audio(wav, sample_rate=rate)  # (T, 2) -> (T,), resampled to rate
    return wave


def trim_tail(
    wave: np.ndarray, rate: int, seconds: float, max_tail: float = 1.0, threshold: float = 1e-3
) -> np.ndarray:
    """Cut ``wave`` (T,) to ``seconds`` plus its release tail: up to the last sample above
    ``threshold``, at most ``max_tail`` s past ``seconds``; the last 20 ms fade out."""
    start, stop = int(round(seconds * rate)), int(round((seconds + max_tail) * rate))
    loud = np.nonzero(np.abs(wave[:stop]) > threshold)[0]
    end = min(max(start, int(loud[-1]) + 1 if loud.size else 0), stop, wave.size)
    return fade_out(wave[:end], int(0.02 * rate))


def fade_out(wave: np.ndarray, frames: int) -> np.ndarray:
    """A copy of ``wave`` (T,) whose last ``frames`` samples fade linearly to zero."""
    wave = np.array(wave, dtype=np.float32)
    frames = min(frames, wave.size)
    if frames > 0:
        wave[-frames:] *= np.linspace(1.0, 0.0, frames, dtype=np.float32)
    return wave
