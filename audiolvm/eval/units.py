"""Unit measures of discrete codes against frame labels (phones): the 2017 code->phone protocol and HuBERT's
phone purity, cluster purity and PNMI. Plain numpy on ``codes`` and ``phones`` (int arrays, one entry per frame)."""

from __future__ import annotations

import numpy as np

from audiolvm.data.phones import PHONES


def code_phone_map(codes: np.ndarray, phones: np.ndarray, num_codes: int | None = None,
                   num_phones: int = len(PHONES)) -> tuple[np.ndarray, int]:
    """``(mapping[K], majority phone)``: each code's most frequent phone among the given frames (ties: the
    lower phone index); codes never seen map to the majority phone."""
    k = max(int(codes.max()) + 1 if len(codes) else 1, num_codes or 0)
    table = np.bincount(codes * num_phones + phones, minlength=k * num_phones).reshape(k, num_phones)
    majority = int(np.bincount(phones, minlength=num_phones).argmax())
    return np.where(table.sum(1) > 0, table.argmax(1), majority), majority


def code_phone_accuracy(codes: np.ndarray, phones: np.ndarray, train: np.ndarray,
                        num_phones: int = len(PHONES)) -> tuple[float, float, np.ndarray]:
    """The 2017 protocol: ``(accuracy, majority accuracy, predicted phone of each test frame)``.

    Each code predicts its most frequent train phone (ties: the lower phone index); codes unseen in
    training predict the train majority phone, which is also the baseline."""
    test = ~train
    mapping, majority = code_phone_map(codes[train], phones[train], int(codes.max()) + 1 if len(codes) else 1,
                                       num_phones)
    pred = mapping[codes[test]]
    if not test.any():
        return float("nan"), float("nan"), pred
    return float(np.mean(pred == phones[test])), float(np.mean(phones[test] == majority)), pred


def _joint_counts(codes: np.ndarray, phones: np.ndarray) -> np.ndarray:
    """Frame counts ``[codes present x phone ids]``."""
    _, c = np.unique(codes, return_inverse=True)
    table = np.zeros((c.max() + 1, int(phones.max()) + 1), np.int64)
    np.add.at(table, (c, phones), 1)
    return table


def unit_measures(codes: np.ndarray, phones: np.ndarray) -> dict[str, float]:
    """HuBERT's unit measures from one joint count table of the frames:

    * ``purity`` (phone purity): the fraction of frames whose phone is their code's most frequent,
      ``E_z[max_y p(y|z)]``;
    * ``cluster_purity``: the fraction of frames whose code is their phone's most frequent, ``E_y[max_z p(z|y)]``;
    * ``pnmi``: ``I(y; z) / H(y)``, the fraction of the phone's uncertainty the code removes (1: codes determine
      phones; 0: independent).
    """
    table = _joint_counts(codes, phones)
    joint = table / len(codes)  # (Z, Y)
    pz, py = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    mi = float((joint[nz] * np.log(joint[nz] / (pz @ py)[nz])).sum())
    hy = float(-(py[py > 0] * np.log(py[py > 0])).sum())
    return {"purity": float(table.max(1).sum() / len(codes)), "cluster_purity": float(table.max(0).sum() / len(codes)),
            "pnmi": mi / hy if hy > 0 else float("nan")}


def purity(codes: np.ndarray, phones: np.ndarray) -> float:
    """Phone purity (:func:`unit_measures`)."""
    return unit_measures(codes, phones)["purity"]


def cluster_purity(codes: np.ndarray, phones: np.ndarray) -> float:
    """Cluster purity (:func:`unit_measures`)."""
    return unit_measures(codes, phones)["cluster_purity"]


def pnmi(codes: np.ndarray, phones: np.ndarray) -> float:
    """Phone-normalised mutual information (:func:`unit_measures`)."""
    return unit_measures(codes, phones)["pnmi"]
