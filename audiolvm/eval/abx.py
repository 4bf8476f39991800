"""Phone ABX discriminability of frame embeddings, within and across speakers (simplified, frame-level).

Frames are first pooled into phone segments (:func:`phone_segments`: runs of one phone label within
one utterance, mean of their embeddings, silence dropped). A triplet ``(A, B, X)`` has ``A`` and ``X``
of phone ``a`` and ``B`` of another phone ``b``; it is an error when ``d(A, X) > d(B, X)`` and half
an error on a tie. Within speaker, ``A``, ``B`` and ``X`` share a speaker; across speakers, ``A`` and
``B`` come from one speaker and ``X`` from another. Triplets are drawn with a seeded generator by
first drawing a cell (phone pair and speaker(s)) uniformly, then one triplet inside it, so the score
estimates the mean error over cells as in the ZeroSpeech ABX, without its context conditioning.

Perfectly separated embeddings score 0, identical embeddings (no information) score 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TIE_TOLERANCE = 1e-7  # distances closer than this count as equal (half an error)


@dataclass
class Segments:
    """Mean-pooled phone segments: ``emb`` ``[S x D]``, integer ``phone`` and ``speaker`` ``[S]``."""

    emb: np.ndarray
    phone: np.ndarray
    speaker: np.ndarray


def phone_segments(emb: np.ndarray, phone: np.ndarray, speaker: np.ndarray, utterance: np.ndarray,
                   skip: int | None = None) -> Segments:
    """Pool frames into segments: maximal runs of equal ``phone`` within one ``utterance``.

    Args:
        emb: frame embeddings ``[N x D]``; ``phone``, ``speaker``, ``utterance``: integer ids ``[N]``,
            frames of an utterance contiguous and in time order.
        skip: a phone id to drop (silence).
    """
    n = len(phone)
    if n == 0:
        return Segments(np.zeros((0, emb.shape[1]), np.float64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    change = np.ones(n, bool)
    change[1:] = (phone[1:] != phone[:-1]) | (utterance[1:] != utterance[:-1])
    seg = np.cumsum(change) - 1  # (N,) segment id of each frame
    count = np.bincount(seg).astype(np.float64)  # (S,)
    sums = np.zeros((len(count), emb.shape[1]))  # (S, D)
    np.add.at(sums, seg, emb.astype(np.float64))
    starts = np.flatnonzero(change)
    keep = np.ones(len(count), bool) if skip is None else phone[starts] != skip
    return Segments((sums / count[:, None])[keep], phone[starts][keep], speaker[starts][keep])


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise ``1 - cos(a_i, b_i)`` for ``[M x D]`` arrays (a zero vector is at distance 1 from all)."""
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    return 1.0 - (a * b).sum(1) / np.maximum(na * nb, 1e-12)


class _Groups:
    """Segment indices grouped by (speaker, phone): ``members[start[s, p] : start[s, p] + size[s, p]]``."""

    def __init__(self, seg: Segments) -> None:
        self.speakers, spk = np.unique(seg.speaker, return_inverse=True)
        self.phones, ph = np.unique(seg.phone, return_inverse=True)
        key = spk * len(self.phones) + ph  # (S,)
        self.members = np.argsort(key, kind="stable")  # (S,) segment ids grouped by key
        flat = np.bincount(key, minlength=len(self.speakers) * len(self.phones))
        self.size = flat.reshape(len(self.speakers), len(self.phones))  # (n_spk, n_ph)
        self.start = (np.cumsum(flat) - flat).reshape(self.size.shape)  # (n_spk, n_ph)

    def pick(self, spk: np.ndarray, ph: np.ndarray, u: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
        """One member of each group ``(spk[i], ph[i])`` given uniforms ``u[i]``; with ``exclude``, a position
        different from ``exclude[i]`` (needs groups of two or more)."""
        n = self.size[spk, ph] - (0 if exclude is None else 1)
        pos = np.minimum((u * n).astype(np.int64), n - 1)
        if exclude is not None:
            pos = pos + (pos >= exclude)
        return pos


def _cells(groups: _Groups, across: bool) -> np.ndarray:
    """``[C x 4]`` rows ``(phone a, phone b, speaker of A and B, speaker of X)`` with enough segments."""
    has = groups.size >= 1  # (n_spk, n_ph)
    other = ~np.eye(len(groups.phones), dtype=bool)  # (n_ph, n_ph) a != b
    if not across:
        ok = (groups.size >= 2)[:, :, None] & has[:, None, :] & other[None]  # (s, a, b)
        s, a, b = np.nonzero(ok)
        return np.stack([a, b, s, s], 1)
    ok = (has[:, None, :, None] & has[:, None, None, :] & has[None, :, :, None]  # (s, t, a, b)
          & other[None, None] & ~np.eye(len(groups.speakers), dtype=bool)[:, :, None, None])
    s, t, a, b = np.nonzero(ok)
    return np.stack([a, b, s, t], 1)


def abx_error(seg: Segments, across: bool = False, num_triplets: int = 20000, seed: int = 0) -> float:
    """ABX error rate in [0, 1] (NaN when no cell has enough segments); cosine distance."""
    if len(seg.phone) == 0:
        return float("nan")
    groups = _Groups(seg)
    cells = _cells(groups, across)
    if not len(cells):
        return float("nan")
    rng = np.random.default_rng(seed)
    a, b, s, t = cells[rng.integers(0, len(cells), size=num_triplets)].T  # (M,) each
    u = rng.random((3, num_triplets))
    pos_a = groups.pick(s, a, u[0])
    pos_b = groups.pick(s, b, u[1])
    pos_x = groups.pick(t, a, u[2], exclude=None if across else pos_a)  # within: X is not A itself
    ia = groups.members[groups.start[s, a] + pos_a]
    ib = groups.members[groups.start[s, b] + pos_b]
    ix = groups.members[groups.start[t, a] + pos_x]
    d_ax = cosine_distance(seg.emb[ia], seg.emb[ix])
    d_bx = cosine_distance(seg.emb[ib], seg.emb[ix])
    tie = np.abs(d_ax - d_bx) <= TIE_TOLERANCE
    return float(np.mean(np.where(tie, 0.5, (d_ax > d_bx).astype(np.float64))))
