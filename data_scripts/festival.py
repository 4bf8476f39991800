"""Festival diphone voices: render sentences with exact segment (phone) and word timings, at a chosen prosody.

Festival (``apt-get install festival festvox-kallpc16k festvox-kdlpc16k``) is run as ``festival -b script.scm``,
one process for a batch of sentences. After ``utt.synth`` the script saves the wave and prints, for every item of
the utterance's ``Segment`` relation, its name and ``end`` (seconds), and for every ``Word`` its name,
``word_start`` and ``word_end``: the times Festival itself built the waveform from (the diphone synthesizer maps
each segment's end onto the output pitch marks), so they are exact, not aligned.

Phones are the ``radio`` phone set of ``kal_diphone`` and ``ked_diphone``: lower-case ARPAbet (``dh ax d ao g``,
TIMIT's ``ax``, ``axr``, ``el``, ``en``, ``dx``... included) and the silences ``pau``, ``h#``, ``brth``;
:func:`audiolvm.data.phones.map_phone` folds them into the 39 CMUdict phones.

Prosody (:class:`Prosody`) is what makes several "speakers" out of one voice: ``Duration_Stretch`` scales every
predicted segment duration (the voices' own value is 1.1), and ``target_f0_mean`` / ``target_f0_std`` of
``int_lr_params`` set the F0 the voices' linear-regression intonation model maps its contour onto (their own:
105 Hz / 14-15 Hz). Rendering is deterministic: the same text, voice and prosody give the same samples.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audiolvm.core.audio import load_audio, resample

VOICES = ("kal_diphone", "ked_diphone")  # festvox-kallpc16k, festvox-kdlpc16k (whose voice is ked_diphone)
VOICE_RATE = 16000  # both voices' sample rate (the "16k" of their packages)
APT_PACKAGES = "festival festvox-kallpc16k festvox-kdlpc16k"
INSTALL_HINT = f"apt-get install {APT_PACKAGES}"
SILENCES = frozenset({"pau", "h#", "brth"})  # PhoneSet.silences of the radio phone set
_TRIM_LIMIT_S = 0.1  # the wave may outlast the last segment by the overlap-add tail; more than this is a bug
_LINE = re.compile(r"^@@(SEG|WORD|UTT) (.*)$")


class FestivalError(RuntimeError):
    """Festival is missing, or failed on a voice or a sentence."""


@dataclass(frozen=True)
class Prosody:
    """Per-speaker prosody; ``None`` keeps the voice's own value."""

    stretch: float | None = None  # Duration_Stretch: 1.3 makes every segment 30% longer than 1.0 does
    f0_mean: float | None = None  # int_lr_params target_f0_mean, Hz
    f0_std: float | None = None  # int_lr_params target_f0_std, Hz

    def scheme(self) -> str:
        """Scheme that applies these settings (after the voice is selected, which resets them)."""
        lines = []
        if self.stretch is not None:
            lines.append(f"(Parameter.set 'Duration_Stretch {self.stretch:.6g})")
        if self.f0_mean is not None or self.f0_std is not None:
            own = "(cadr (assoc '{} int_lr_params))"
            mean = own.format("target_f0_mean") if self.f0_mean is None else f"{self.f0_mean:.6g}"
            std = own.format("target_f0_std") if self.f0_std is None else f"{self.f0_std:.6g}"
            lines.append(
                f"(set! int_lr_params (list (list 'target_f0_mean {mean}) (list 'target_f0_std {std}) "
                "(assoc 'model_f0_mean int_lr_params) (assoc 'model_f0_std int_lr_params)))"
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class Timed:
    """A segment or word: Festival's name and its span in seconds."""

    name: str
    start: float
    end: float

    @property
    def is_pause(self) -> bool:
        return self.name in SILENCES


@dataclass
class Rendering:
    """One sentence: ``wave (T,)`` float32 in [-1, 1] at ``sample_rate``; segments tile ``[0, duration]``."""

    wave: np.ndarray
    sample_rate: int
    segments: list[Timed]
    words: list[Timed]

    @property
    def duration(self) -> float:
        return self.wave.size / self.sample_rate


def festival_available() -> bool:
    return shutil.which("festival") is not None


def festival_version() -> str:
    """e.g. ``"2.5.0"`` (``"unknown"`` if ``festival --version`` says something else)."""
    if not festival_available():
        raise FestivalError(f"festival is not installed: {INSTALL_HINT}")
    out = subprocess.run(["festival", "--version"], capture_output=True, text=True, timeout=60).stdout
    m = re.search(r"System: ([\w.]+)", out)
    return m.group(1) if m else "unknown"


def check_voices(voices: tuple[str, ...] | list[str] = VOICES) -> None:
    """Raise :class:`FestivalError` naming the apt packages if festival or one of ``voices`` is not installed."""
    if not festival_available():
        raise FestivalError(f"festival is not installed: {INSTALL_HINT}")
    with tempfile.TemporaryDirectory(prefix="festival-") as tmp:
        script = Path(tmp) / "voices.scm"
        script.write_text('(format t "@@VOICES %l\\n" (voice.list))\n', encoding="utf-8")
        proc = subprocess.run(["festival", "-b", str(script)], capture_output=True, text=True, timeout=60)
    m = re.search(r"^@@VOICES \((.*)\)$", proc.stdout, re.M)
    installed = set(m.group(1).split()) if m else set()
    missing = [v for v in voices if v not in installed]
    if missing:
        raise FestivalError(f"festival voice(s) {', '.join(missing)} not installed (festival lists "
                            f"{sorted(installed) or 'none'}): {INSTALL_HINT}")


def _quote(text: str) -> str:
    """A Scheme string literal for ``text`` (quotes and backslashes become spaces, as Festival would not say them)."""
    return '"' + " ".join(text.replace("\\", " ").replace('"', " ").split()) + '"'


def _script(voice: str, texts: list[str], prosody: Prosody, folder: Path) -> str:
    lines = [f"(voice_{voice})", prosody.scheme()]
    for i, text in enumerate(texts):
        lines += [
            f"(set! u (Utterance Text {_quote(text)}))",
            "(utt.synth u)",
            f'(utt.save.wave u "{folder / f"{i}.wav"}" \'riff)',
            f'(format t "@@UTT {i}\\n")',
            "(mapcar (lambda (s) (format t \"@@SEG %s %s\\n\" (item.name s) (item.feat s \"end\")))"
            " (utt.relation.items u 'Segment))",
            "(mapcar (lambda (w) (format t \"@@WORD %s %s %s\\n\" (item.name w) (item.feat w \"word_start\")"
            " (item.feat w \"word_end\"))) (utt.relation.items u 'Word))",
        ]
    return "\n".join(lines) + "\n"


def _parse(stdout: str, n: int) -> list[tuple[list[Timed], list[Timed]]]:
    """Per sentence: (segments, words) from the ``@@`` lines the script prints."""
    out: list[tuple[list[Timed], list[Timed]]] = []
    for line in stdout.splitlines():
        m = _LINE.match(line.strip())
        if m is None:
            continue
        kind, rest = m.groups()
        if kind == "UTT":
            out.append(([], []))
        elif kind == "SEG":
            name, end = rest.rsplit(" ", 1)
            segs = out[-1][0]
            segs.append(Timed(name, segs[-1].end if segs else 0.0, float(end)))
        else:
            name, start, end = rest.rsplit(" ", 2)
            out[-1][1].append(Timed(name, float(start), float(end)))
    if len(out) != n:
        raise FestivalError(f"festival reported timings for {len(out)} of {n} sentences")
    return out


def _fit(wave: np.ndarray, rate: int, segments: list[Timed], words: list[Timed], text: str, trim: bool):
    """Drop empty segments; with ``trim``, cut (or zero-pad) the wave at the last segment's end and end the
    last segment (a pause) on the last sample, so the timings tile the audio exactly."""
    segments = [s for s in segments if s.end > s.start]
    if not segments:
        raise FestivalError(f"festival gave no segments for {text!r}")
    if not trim:
        return wave, segments, words
    n = round(segments[-1].end * rate)
    if abs(n - wave.size) > _TRIM_LIMIT_S * rate:
        raise FestivalError(f"festival's wave ({wave.size / rate:.3f} s) and segments ({segments[-1].end:.3f} s) "
                            f"disagree for {text!r}")
    wave = wave[:n] if wave.size >= n else np.pad(wave, (0, n - wave.size))
    last = segments[-1]
    segments[-1] = Timed(last.name, last.start, n / rate)
    words = [Timed(w.name, w.start, min(w.end, n / rate)) for w in words]
    return wave, segments, words


def render_many(
    texts: list[str], voice: str, prosody: Prosody = Prosody(), rate: int | None = None, trim: bool = True
) -> list[Rendering]:
    """Render ``texts`` with one Festival process (the voice loads once; each sentence is independent).

    Args:
        voice: e.g. ``"kal_diphone"`` (any installed Festival voice).
        prosody: rate and F0 settings (default: the voice's own).
        rate: resample to this rate with soxr (None: Festival's own, 16 kHz for these voices).
        trim: cut the wave at the last segment's end (Festival's overlap-add leaves ~20-40 ms of near-silence
            after it), so that the segments tile the audio; ``False`` keeps Festival's wave as it is.
    """
    if not festival_available():
        raise FestivalError(f"festival is not installed: {INSTALL_HINT}")
    if not texts:
        return []
    with tempfile.TemporaryDirectory(prefix="festival-") as tmp:
        folder = Path(tmp)
        script = folder / "say.scm"
        script.write_text(_script(voice, texts, prosody, folder), encoding="utf-8")
        proc = subprocess.run(["festival", "-b", str(script)], capture_output=True, text=True,
                              timeout=60 + 30 * len(texts))  # fmt: skip
        missing = [i for i in range(len(texts)) if not (folder / f"{i}.wav").is_file()]
        if proc.returncode != 0 or missing:
            why = (proc.stderr.strip() or proc.stdout.strip())[-300:]
            raise FestivalError(f"festival failed for voice {voice!r} ({why}); is the voice installed? {INSTALL_HINT}")
        timings = _parse(proc.stdout, len(texts))
        out = []
        for i, (text, (segments, words)) in enumerate(zip(texts, timings, strict=True)):
            wave, sr = load_audio(folder / f"{i}.wav")  # (T,) float32, int16 / 32768
            wave, segments, words = _fit(wave, sr, segments, words, text, trim)
            if rate is not None and rate != sr:
                wave, sr = resample(wave, sr, rate), rate
            out.append(Rendering(wave, sr, segments, words))
    return out


def render(
    text: str, voice: str, prosody: Prosody = Prosody(), rate: int | None = None, trim: bool = True
) -> Rendering:
    """One sentence by one Festival voice; see :func:`render_many`."""
    return render_many([text], voice, prosody, rate, trim)[0]
