"""Adapter for a Hugging Face ``datasets.Dataset`` with an audio column (no corpus folder, so not detected)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from audiolvm.core.audio import AudioError, decode_source, probe_source
from audiolvm.data.entry import CorpusError, Entry
from audiolvm.data.manifest import ScanResult
from audiolvm.data.readers.base import CorpusReader


class HFDatasetReader(CorpusReader):
    """Adapter for a ``datasets.Dataset`` whose ``audio_column`` holds Audio (or raw bytes).

    The column is cast to ``Audio(decode=False)`` and decoded with soundfile (no torchcodec).
    Entries get virtual paths ``hf://<row index>``; they are scanned once per reader, in memory.
    ``speaker_column``/``id_column``/``text_column`` default to "unknown", the row index and "".
    """

    kind = "hf"

    def __init__(self, dataset: Any, audio_column: str = "audio", speaker_column: str | None = None,
                 text_column: str | None = None, id_column: str | None = None,
                 sample_rate: int | None = None) -> None:
        from datasets import Audio

        for field, col in [("audio_column", audio_column), ("speaker_column", speaker_column),
                           ("text_column", text_column), ("id_column", id_column)]:
            if col is not None and col not in dataset.column_names:
                raise CorpusError(f"HF dataset: no column {col!r} (field {field}); columns are "
                                  f"{dataset.column_names}; pass {field}=<one of them>")
        if isinstance(dataset.features[audio_column], Audio):
            dataset = dataset.cast_column(audio_column, Audio(decode=False))
        super().__init__(sample_rate)
        self.dataset = dataset
        self.audio_column, self.speaker_column = audio_column, speaker_column
        self.text_column, self.id_column = text_column, id_column
        self._scan_result: ScanResult | None = None

    def entries(self) -> list[Entry]:
        if self._scan_result is None:
            self._scan_result = self._scan_rows()
        if not self._scan_result.entries and not self._scan_result.bad:
            raise CorpusError("HF dataset: 0 rows; pass a dataset with audio rows")
        for path, reason in self._scan_result.bad:
            self.skip(path, reason)
        return self._scan_result.entries

    def _scan_rows(self) -> ScanResult:
        entries, bad = [], []
        for i in range(len(self.dataset)):
            row = self.dataset[i]
            name = f"hf://{i}"
            try:
                info = probe_source(self._source(row[self.audio_column], name), name)
            except AudioError as err:
                bad.append((name, err.reason))
                continue
            speaker = self._label(self.speaker_column, row, "unknown")
            utt = self._label(self.id_column, row, str(i))
            text = self._label(self.text_column, row, "")
            entries.append(Entry(name, speaker, utt, text, info.duration, info.sample_rate, info.frames))
        return ScanResult(entries, bad)

    def _label(self, column: str | None, row: dict, default: str) -> str:
        if column is None:
            return default
        feature, value = self.dataset.features[column], row[column]
        return str(feature.int2str(value) if hasattr(feature, "int2str") else value)

    @staticmethod
    def _source(value: Any, name: str) -> io.BytesIO | str:
        if isinstance(value, (bytes, bytearray)):
            return io.BytesIO(value)
        if isinstance(value, dict) and value.get("bytes"):
            return io.BytesIO(value["bytes"])
        if isinstance(value, dict) and value.get("path"):
            return str(value["path"])
        raise AudioError(name, "no audio bytes or path in the row", "check audio_column")

    def read(self, entry: Entry, offset: int = 0, frames: int = -1) -> tuple[np.ndarray, int]:
        index = int(entry.path.removeprefix("hf://"))
        source = self._source(self.dataset[index][self.audio_column], entry.path)
        return decode_source(source, entry.path, offset, frames)

