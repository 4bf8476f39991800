"""Train / valid splits of a corpus's entries, and whole speakers held out as unseen.

Every draw comes from :func:`~audiolvm.core.seed.derived_rng` with a fixed stream per purpose, so a split
depends only on the entries and the seed (not on their order).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from audiolvm.core.errors import UsageError
from audiolvm.core.seed import derived_rng
from audiolvm.data.entry import Entry


def split_entries(
    entries: Sequence[Entry], valid_fraction: float = 0.05, by: str = "utterance", seed: int = 0
) -> tuple[list[Entry], list[Entry]]:
    """Deterministic train/valid split; both lists keep the input order.

    by="speaker": disjoint speaker sets; at least one valid speaker when ``valid_fraction > 0``
    and there are two or more speakers, and always at least one train speaker.
    by="utterance": each speaker keeps at least one utterance in train; about ``valid_fraction``
    of each speaker's utterances (stochastic rounding) go to valid, at least one overall.
    """
    if not 0.0 <= valid_fraction < 1.0:
        raise UsageError(f"split_entries: valid_fraction={valid_fraction} must be in [0, 1)")
    if by == "speaker":
        valid_ids = _valid_by_speaker(entries, valid_fraction, seed)
    elif by == "utterance":
        valid_ids = _valid_by_utterance(entries, valid_fraction, seed)
    else:
        raise UsageError(f"split_entries: by={by!r} is not supported; use by='utterance' or by='speaker'")
    train = [e for i, e in enumerate(entries) if i not in valid_ids]
    valid = [e for i, e in enumerate(entries) if i in valid_ids]
    return train, valid


def unseen_speakers(entries: Sequence[Entry], count: int, seed: int = 0, names: Sequence[str] = ()) -> list[str]:
    """``count`` whole speakers (sorted names) drawn by ``seed`` from those of ``entries``, to be kept out of a
    model's training and validation entirely; at least two speakers must remain. ``names``: these speakers
    instead of a draw (``count`` must equal their number)."""
    speakers = sorted({e.speaker for e in entries})
    if count < 0 or (count and count > len(speakers) - 2):
        raise UsageError(f"unseen_speakers={count}: the corpus has {len(speakers)} speakers; hold out between 0 "
                         f"and {max(len(speakers) - 2, 0)} (at least two must remain for training)")
    if names:
        missing = sorted(set(names) - set(speakers))
        if missing:
            raise UsageError(f"unseen_names={list(names)}: {missing} not among the corpus's {len(speakers)} speakers "
                             f"({', '.join(speakers[:6])}{', ...' if len(speakers) > 6 else ''})")
        if count != len(set(names)):
            raise UsageError(f"unseen_names={list(names)} names {len(set(names))} speakers but unseen_speakers={count};"
                             f" set unseen_speakers={len(set(names))}")
        return sorted(set(names))
    order = derived_rng(seed, 0x0A5EE).permutation(len(speakers))
    return sorted(speakers[k] for k in order[:count])


def _by_speaker(entries: Sequence[Entry]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for i, e in enumerate(entries):
        groups.setdefault(e.speaker, []).append(i)
    return {spk: sorted(ids, key=lambda i: (entries[i].utterance, entries[i].path))
            for spk, ids in sorted(groups.items())}


def _valid_by_speaker(entries: Sequence[Entry], fraction: float, seed: int) -> set[int]:
    groups = _by_speaker(entries)
    speakers = list(groups)
    n_valid = int(round(fraction * len(speakers)))
    if fraction > 0 and len(speakers) >= 2:
        n_valid = min(max(n_valid, 1), len(speakers) - 1)
    order = derived_rng(seed, 0x5EA7).permutation(len(speakers))
    return {i for k in order[:n_valid] for i in groups[speakers[k]]}


def _valid_by_utterance(entries: Sequence[Entry], fraction: float, seed: int) -> set[int]:
    valid: set[int] = set()
    groups = _by_speaker(entries)
    for spk, ids in groups.items():
        rng = derived_rng(seed, zlib.crc32(spk.encode()))
        k = min(int(fraction * len(ids) + rng.random()), len(ids) - 1)
        valid.update(ids[j] for j in rng.permutation(len(ids))[:k])
    if fraction > 0 and not valid:
        spk, ids = max(groups.items(), key=lambda kv: (len(kv[1]), kv[0]))
        if len(ids) >= 2:
            valid.add(ids[int(derived_rng(seed, zlib.crc32(spk.encode())).integers(len(ids)))])
    return valid
