"""Corpus readers, cached manifests, train/valid splits and training datasets.

``audiolvm.data`` imports only ``audiolvm.core``, the standard library, numpy, torch, soundfile
and (lazily, in :class:`HFDatasetReader`) ``datasets``.
"""

from audiolvm.data.crops import CropDataset, UtteranceDataset
from audiolvm.data.manifest import AUDIO_EXTENSIONS, CorpusError, Entry, ScanResult, split_entries
from audiolvm.data.music import MusicCorpusReader
from audiolvm.data.readers import (
    CorpusReader,
    FileCorpusReader,
    FolderReader,
    HFDatasetReader,
    LibriSpeechReader,
    Utterance,
    VCTKReader,
    detect_kind,
    open_corpus,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "CorpusError",
    "CorpusReader",
    "CropDataset",
    "Entry",
    "FileCorpusReader",
    "FolderReader",
    "HFDatasetReader",
    "LibriSpeechReader",
    "MusicCorpusReader",
    "ScanResult",
    "Utterance",
    "UtteranceDataset",
    "VCTKReader",
    "detect_kind",
    "open_corpus",
    "split_entries",
]
