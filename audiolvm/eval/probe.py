"""What do the codes encode? Phone and speaker probes of a VQ-VAE's levels (van den Oord et al. 2017, 4.3).

For every level, every utterance's frames (one per code, ``hop_l`` samples) get the phone covering most
of the code's window (:func:`~audiolvm.data.phones.frame_labels_majority`, 40 classes of
:data:`~audiolvm.data.phones.PHONES`), its speaker and its split. Three systems are scored on the same
frames with the same number of codes ``K``:

- ``model``: the trained encoder's codes, quantized vectors ``z`` and pre-quantization features.
- ``kmeans_mfcc``: 13 MFCCs + deltas + delta-deltas at the level's frame rate (25 ms windows or one hop if
  longer, centred on the code's window, mean/variance normalised per utterance), clustered by a seeded
  ``MiniBatchKMeans`` with ``K`` clusters fitted on training frames; ``z`` is the frame's centroid.
- ``random_encoder``: the same architecture with randomly initialised weights. Its VQ codebook is never
  trained (``init="first_batch"`` would fill it on a training-mode forward), so its codes are k-means
  (``K`` clusters, as above) on its pre-quantization features, and ``z`` is the centroid.

Metrics (``train``/``test`` are the model's own utterance split, train/valid):

- ``code_phone_acc``: each code is labelled with its most frequent phone on train frames (unseen codes:
  the train majority phone), accuracy on test frames; ``majority_acc``: always the train majority phone.
- ``purity`` (phone purity), ``cluster_purity`` and ``pnmi`` (phone-normalised mutual information), as defined in
  the HuBERT paper, and ``nmi`` (sklearn's arithmetic-mean NMI) between codes and phones, over all frames.
- ``linear_z`` / ``linear_pre``: standardised logistic regression (bounded iterations, at most
  ``max_frames`` seeded train and test frames) from ``z`` / pre-quantization features to the phone.
- ``abx_within`` / ``abx_across``: phone ABX error of mean-pooled ``z`` segments, see :mod:`audiolvm.eval.abx`
  (all utterances; silence excluded).
- ``speaker_acc``: logistic regression from normalised code histograms of ``speaker_window`` second
  windows to the speaker, train windows to test windows; lower means fewer speaker cues. ``speaker_chance``
  is 1 / number of train speakers.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from audiolvm.core.errors import UsageError
from audiolvm.data import CorpusReader, Entry, iter_audio
from audiolvm.data.alignments import Tier
from audiolvm.data.phones import PHONES, SILENCE, frame_labels_majority
from audiolvm.eval.abx import abx_error, phone_segments
from audiolvm.eval.probe_report import METRICS, SYSTEMS, LevelProbe, ProbeReport, plot_confusion  # noqa: F401
from audiolvm.eval.units import code_phone_accuracy, code_phone_map, unit_measures
from audiolvm.models.multilevel import MultiLevelAutoencoder

PHONE_INDEX = {p: i for i, p in enumerate(PHONES)}


@dataclass
class ProbeOptions:
    """Seeds and the bounds that keep a probe fast."""

    seed: int = 0
    max_frames: int = 20000  # frames for k-means fitting and each linear probe (train and test each)
    max_iter: int = 200  # logistic-regression iterations
    abx_triplets: int = 20000
    speaker_window: float = 1.0  # seconds of codes per speaker-probe histogram
    threads: int = 1  # BLAS / OpenMP threads for librosa and scikit-learn (1: no oversubscription on busy CPUs)


def _threads(n: int):  # noqa: ANN202 - a threadpoolctl context manager
    """Limit BLAS / OpenMP pools (numpy, scipy, scikit-learn) to ``n`` threads inside a ``with`` block."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=n)


@dataclass
class LevelFrames:
    """One level's frames over many utterances (an utterance's frames contiguous, in time order).

    ``phone``, ``speaker``, ``utterance``: int ``[N]`` (indices into :data:`PHONES`, ``speakers``, the
    utterance list); ``train``: bool ``[N]``; ``systems[name]``: ``codes`` ``[N]``, ``z`` and ``pre`` ``[N x D]``.
    """

    level: int
    hop: int
    sample_rate: int
    num_codes: int
    phone: np.ndarray
    speaker: np.ndarray
    utterance: np.ndarray
    train: np.ndarray
    speakers: list[str]
    systems: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


# ----------------------------------------------------------------------------- frames


def mfcc_frames(wave: np.ndarray, sample_rate: int, hop: int, num_frames: int) -> np.ndarray:
    """``[num_frames x 39]`` MFCC + deltas, frame ``i`` centred on ``[i * hop, (i + 1) * hop)``, per-utterance CMVN."""
    import librosa

    win = max(int(round(0.025 * sample_rate)), hop)
    n_fft = 1 << (win - 1).bit_length()
    left = (n_fft - hop) // 2
    total = (num_frames - 1) * hop + n_fft
    x = np.pad(wave.astype(np.float32), (left, max(0, total - left - len(wave))))[:total]
    mfcc = librosa.feature.mfcc(y=x, sr=sample_rate, n_mfcc=13, n_fft=n_fft, hop_length=hop, win_length=win,
                                center=False, n_mels=40)  # (13, N)
    width = min(9, num_frames - (1 - num_frames % 2))  # odd, at most the number of frames
    if width >= 3:
        deltas = [librosa.feature.delta(mfcc, width=width, order=k) for k in (1, 2)]
    else:
        deltas = [np.zeros_like(mfcc)] * 2
    feats = np.concatenate([mfcc, *deltas]).T  # (N, 39)
    return ((feats - feats.mean(0)) / (feats.std(0) + 1e-5)).astype(np.float32)


def _utterance_level(model: MultiLevelAutoencoder, random_model: MultiLevelAutoencoder | None, x: torch.Tensor,
                     wave: np.ndarray, tier: Tier, level: int, sample_rate: int, threads: int) -> dict[str, np.ndarray]:
    """One utterance's columns at one level: phone ids, codes, z, pre, MFCCs and random-encoder features."""
    hop = model.hops[level]
    pre, z, codes = model.level_features(x, level)  # (1, D, N), (1, D, N), (1, N)
    if codes is None:
        raise UsageError(f"level {level} has a continuous bottleneck; the probe needs codes (a VQ model)")
    n = codes.shape[-1]
    with _threads(threads):
        mfcc = mfcc_frames(wave, sample_rate, hop, n)  # (N, 39)
    col = {"phone": phone_ids(tier, n, hop / sample_rate), "codes": codes[0].numpy(),
           "z": z[0].T.float().numpy(), "pre": pre[0].T.float().numpy(), "mfcc": mfcc}  # (N,), (N, D)...
    if random_model is not None:
        col["random"] = random_model.level_features(x, level)[0][0].T.float().numpy()  # (N, D)
    return col


def phone_ids(tier: Tier, num_frames: int, hop_seconds: float) -> np.ndarray:
    """``LongTensor``-like ``int64[num_frames]`` of :data:`PHONES` indices, the majority phone of each frame."""
    return np.array([PHONE_INDEX[p] for p in frame_labels_majority(tier, num_frames, hop_seconds)], np.int64)


def _level_codes(model: MultiLevelAutoencoder, wave: np.ndarray, level: int) -> np.ndarray:
    """One level's codes ``int64[N]`` of ``wave`` (only that level's encoder runs)."""
    x = torch.from_numpy(np.ascontiguousarray(wave, np.float32))[None, None]  # (1, 1, T)
    codes = model.level_features(x, level)[2]  # (1, N)
    if codes is None:
        raise UsageError(f"level {level} has a continuous bottleneck; the probe needs codes (a VQ model)")
    return codes[0].numpy()


@dataclass
class CodePhoneReader:
    """What a level's codes say, as phones: the 2017 mapping (each code -> its most frequent phone on
    aligned training utterances), reusable on any audio. Voice conversion uses it to check content
    preservation: re-encode the converted audio and read its phones against the source's alignment."""

    level: int
    hop: int
    sample_rate: int
    mapping: np.ndarray  # (K,) phone index per code

    @classmethod
    @torch.no_grad()
    def fit(cls, model: MultiLevelAutoencoder, reader: CorpusReader, entries: Sequence[Entry],
            tiers: Mapping[str, Tier], level: int, sample_rate: int) -> CodePhoneReader:
        codes, phones = [], []
        hop = model.hops[level]
        for entry, wave in iter_audio(reader, entries, sample_rate, "code->phone map", progress=False):
            c = _level_codes(model, wave, level)  # (N,)
            codes.append(c)
            phones.append(phone_ids(tiers[entry.path], len(c), hop / sample_rate))
        if not codes:
            raise UsageError("CodePhoneReader.fit: no readable aligned utterances")
        mapping, _ = code_phone_map(np.concatenate(codes), np.concatenate(phones),
                                    model.levels[level].bottleneck.num_codes)
        return cls(level, hop, sample_rate, mapping)

    @torch.no_grad()
    def accuracy(self, model: MultiLevelAutoencoder, wave: np.ndarray, tier: Tier) -> float:
        """Fraction of ``wave``'s code frames whose mapped phone is the majority phone of ``tier`` there."""
        codes = _level_codes(model, wave, self.level)  # (N,)
        labels = phone_ids(tier, len(codes), self.hop / self.sample_rate)
        return float(np.mean(self.mapping[codes] == labels))


@torch.no_grad()
def collect_frames(model: MultiLevelAutoencoder, reader: CorpusReader, items: Sequence[tuple[Entry, bool]],
                   tiers: Mapping[str, Tier], levels: Sequence[int], sample_rate: int,
                   random_model: MultiLevelAutoencoder | None = None, progress: bool = False,
                   threads: int = 1) -> list[LevelFrames]:
    """Frames of ``levels`` for ``items`` (``(entry, is_train)``): majority phones from ``tiers[entry.path]``
    (already mapped to :data:`PHONES`), the model's codes / ``z`` / pre, the MFCCs and the random encoder's
    pre-quantization features (baselines not yet clustered, see :func:`quantize_baselines`)."""
    train_of = {e.path: is_train for e, is_train in items}
    speakers = sorted({e.speaker for e, _ in items})
    cols: dict[int, dict[str, list[np.ndarray]]] = {lv: {} for lv in levels}
    for u, (entry, wave) in enumerate(iter_audio(reader, [e for e, _ in items], sample_rate, "probe", progress)):
        x = torch.from_numpy(wave)[None, None]  # (1, 1, T)
        for lv in levels:
            col = _utterance_level(model, random_model, x, wave, tiers[entry.path], lv, sample_rate, threads)
            n = len(col["codes"])
            col.update(speaker=np.full(n, speakers.index(entry.speaker), np.int64),
                       utterance=np.full(n, u, np.int64), train=np.full(n, train_of[entry.path], bool))
            for key, value in col.items():
                cols[lv].setdefault(key, []).append(value)
    if not cols[levels[0]]:
        raise UsageError("no readable utterances to probe")
    out = []
    for lv in levels:
        c = {k: np.concatenate(v) for k, v in cols[lv].items()}
        frames = LevelFrames(lv, model.hops[lv], sample_rate, model.levels[lv].bottleneck.num_codes, c["phone"],
                             c["speaker"], c["utterance"], c["train"], speakers)
        frames.systems["model"] = {"codes": c["codes"], "z": c["z"], "pre": c["pre"]}
        frames.systems["kmeans_mfcc"] = {"pre": c["mfcc"]}
        if random_model is not None:
            frames.systems["random_encoder"] = {"pre": c["random"]}
        out.append(frames)
    return out


def _subsample(index: np.ndarray, limit: int, seed: int) -> np.ndarray:
    if len(index) <= limit:
        return index
    return np.sort(np.random.default_rng(seed).choice(index, size=limit, replace=False))


def kmeans_codes(features: np.ndarray, train: np.ndarray, num_codes: int, seed: int = 0,
                 max_frames: int = 20000) -> tuple[np.ndarray, np.ndarray]:
    """``(codes [N], centroids[codes] [N x D])``: seeded MiniBatchKMeans with ``num_codes`` clusters
    fitted on at most ``max_frames`` train frames of ``features [N x D]``."""
    from sklearn.cluster import MiniBatchKMeans

    fit = _subsample(np.flatnonzero(train), max_frames, seed)
    k = min(num_codes, len(fit))
    km = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=1, batch_size=max(1024, 4 * k), max_iter=50)
    km.fit(features[fit])
    codes = km.predict(features).astype(np.int64)
    return codes, km.cluster_centers_[codes].astype(np.float32)


def quantize_baselines(frames: LevelFrames, seed: int = 0, max_frames: int = 20000) -> None:
    """Give every baseline system without codes its k-means codes and centroid ``z`` (same ``K``)."""
    for system in frames.systems.values():
        if "codes" not in system:
            system["codes"], system["z"] = kmeans_codes(system["pre"], frames.train, frames.num_codes,
                                                        seed, max_frames)


# ----------------------------------------------------------------------------- metrics


def _logistic(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
              max_iter: int) -> float:
    """Test accuracy of standardised multinomial logistic regression (a constant if one train class)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    if len(y_test) == 0:
        return float("nan")
    if len(np.unique(y_train)) < 2:
        return float(np.mean(y_test == y_train[0]))
    scaler = StandardScaler().fit(x_train)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = LogisticRegression(max_iter=max_iter).fit(scaler.transform(x_train), y_train)
    return float(clf.score(scaler.transform(x_test), y_test))


def linear_probe_accuracy(features: np.ndarray, phones: np.ndarray, train: np.ndarray, seed: int = 0,
                          max_frames: int = 20000, max_iter: int = 200) -> float:
    """Phone accuracy of a linear probe on ``features [N x D]``, at most ``max_frames`` train / test frames."""
    tr = _subsample(np.flatnonzero(train), max_frames, seed)
    te = _subsample(np.flatnonzero(~train), max_frames, seed + 1)
    return _logistic(features[tr], phones[tr], features[te], phones[te], max_iter)


def code_histograms(codes: np.ndarray, utterance: np.ndarray, num_codes: int,
                    window: int) -> tuple[np.ndarray, np.ndarray]:
    """``(histograms [W x K], first frame of each window [W])``: normalised code counts over near-equal
    windows of about ``window`` frames, never crossing an utterance boundary."""
    starts = np.flatnonzero(np.r_[True, utterance[1:] != utterance[:-1]])
    ends = np.r_[starts[1:], len(codes)]
    hists, firsts = [], []
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        for chunk in np.array_split(np.arange(s, e), max(1, round((e - s) / window))):
            hists.append(np.bincount(codes[chunk], minlength=num_codes)[:num_codes] / len(chunk))
            firsts.append(chunk[0])
    return np.asarray(hists), np.asarray(firsts)


def speaker_window(frames: LevelFrames, opts: ProbeOptions) -> int:
    """Frames per code histogram of the speaker probe (``opts.speaker_window`` seconds, at least one frame)."""
    return max(1, round(opts.speaker_window * frames.sample_rate / frames.hop))


def speaker_probe_accuracy(frames: LevelFrames, codes: np.ndarray, window_frames: int,
                           max_iter: int = 200) -> float:
    """Speaker accuracy of a logistic regression on per-window code histograms, train windows to the test
    windows of speakers seen in training (NaN if there are none, e.g. with a split by speaker)."""
    hists, firsts = code_histograms(codes, frames.utterance, max(int(codes.max()) + 1, frames.num_codes),
                                    window_frames)
    spk, tr = frames.speaker[firsts], frames.train[firsts]
    te = ~tr & np.isin(spk, spk[tr])
    return _logistic(hists[tr], spk[tr], hists[te], spk[te], max_iter)


def probe_system(frames: LevelFrames, name: str, opts: ProbeOptions) -> tuple[dict[str, float], np.ndarray]:
    """One row of metrics for ``frames.systems[name]`` and its test confusion counts ``[P x P]`` (true x predicted)."""
    from sklearn.metrics import normalized_mutual_info_score

    sys_, phone, train = frames.systems[name], frames.phone, frames.train
    acc, majority, pred = code_phone_accuracy(sys_["codes"], phone, train)
    confusion = np.zeros((len(PHONES), len(PHONES)), np.int64)
    np.add.at(confusion, (phone[~train], pred), 1)
    segs = phone_segments(sys_["z"], phone, frames.speaker, frames.utterance, skip=PHONE_INDEX[SILENCE])
    window = speaker_window(frames, opts)
    row = {
        "code_phone_acc": acc, "majority_acc": majority, **unit_measures(sys_["codes"], phone),
        "nmi": float(normalized_mutual_info_score(phone, sys_["codes"])),
        "linear_z": linear_probe_accuracy(sys_["z"], phone, train, opts.seed, opts.max_frames, opts.max_iter),
        "linear_pre": linear_probe_accuracy(sys_["pre"], phone, train, opts.seed, opts.max_frames, opts.max_iter),
        "abx_within": abx_error(segs, across=False, num_triplets=opts.abx_triplets, seed=opts.seed),
        "abx_across": abx_error(segs, across=True, num_triplets=opts.abx_triplets, seed=opts.seed),
        "speaker_acc": speaker_probe_accuracy(frames, sys_["codes"], window, opts.max_iter),
        "speaker_chance": 1.0 / len(np.unique(frames.speaker[train])),
    }
    return row, confusion


def probe_level(frames: LevelFrames, opts: ProbeOptions) -> LevelProbe:
    """Cluster the baselines, then score every system of one level."""
    rows, confusion = {}, np.zeros((len(PHONES), len(PHONES)), np.int64)
    with _threads(opts.threads):
        quantize_baselines(frames, opts.seed, opts.max_frames)
        for name in SYSTEMS:
            if name in frames.systems:
                rows[name], counts = probe_system(frames, name, opts)
                confusion = counts if name == "model" else confusion
    test = ~frames.train
    with _threads(opts.threads):
        phone_speaker = speaker_probe_accuracy(frames, frames.phone, speaker_window(frames, opts), opts.max_iter)
    return LevelProbe(frames.level, frames.hop, frames.sample_rate / frames.hop, frames.num_codes,
                      len(np.unique(frames.phone)), len(np.unique(frames.phone[test])), int(frames.train.sum()),
                      int(test.sum()), len(frames.speakers), rows, confusion, phone_speaker)


def probe_model(model: MultiLevelAutoencoder, reader: CorpusReader, items: Sequence[tuple[Entry, bool]],
                tiers: Mapping[str, Tier], levels: Sequence[int], sample_rate: int,
                random_model: MultiLevelAutoencoder | None = None, opts: ProbeOptions | None = None,
                progress: bool = False, meta: dict | None = None) -> ProbeReport:
    """Probe ``levels`` of ``model`` on ``items`` (``(entry, is_train)``) against the MFCC k-means and (if
    given) random-encoder baselines. ``tiers[entry.path]``: the phone tier mapped to :data:`PHONES`."""
    opts = opts or ProbeOptions()
    if not any(is_train for _, is_train in items) or all(is_train for _, is_train in items):
        raise UsageError("the probe needs both train and held-out (test) utterances; check the split")
    frames = collect_frames(model, reader, items, tiers, levels, sample_rate, random_model, progress, opts.threads)
    return ProbeReport([probe_level(f, opts) for f in frames], dict(meta or {}))
