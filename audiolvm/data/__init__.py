"""Corpus readers, cached manifests, train/valid splits and training datasets.

``audiolvm.data`` imports only ``audiolvm.core``, the standard library, numpy, torch, soundfile
and (lazily, in :class:`HFDatasetReader`) ``datasets``; the image sets (``images.py``, ``sprites.py``) lazily
import scikit-learn and, optionally, scikit-image.
"""

from audiolvm.data.crops import CropDataset, UtteranceDataset
from audiolvm.data.images import (
    ImageDataError,
    ImageDataset,
    digits_dataset,
    digits_split,
    lfw_subset_dataset,
    mnist_dataset,
    read_idx,
    split_indices,
)
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
    skip_summary,
)
from audiolvm.data.sprites import DSpritesStyle

__all__ = [
    "AUDIO_EXTENSIONS",
    "CorpusError",
    "CorpusReader",
    "CropDataset",
    "DSpritesStyle",
    "Entry",
    "FileCorpusReader",
    "FolderReader",
    "HFDatasetReader",
    "ImageDataError",
    "ImageDataset",
    "LibriSpeechReader",
    "MusicCorpusReader",
    "ScanResult",
    "Utterance",
    "UtteranceDataset",
    "VCTKReader",
    "detect_kind",
    "digits_dataset",
    "digits_split",
    "lfw_subset_dataset",
    "mnist_dataset",
    "open_corpus",
    "read_idx",
    "skip_summary",
    "split_entries",
    "split_indices",
]
