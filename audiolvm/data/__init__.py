"""Corpus readers, cached manifests, train/valid splits and training datasets.

Where things live: ``entry.py`` (:class:`Entry`, :class:`CorpusError`), ``layout.py`` (audio suffixes, walking a
folder), ``manifest.py`` (the manifest cache), ``splits.py`` (train / valid / unseen speakers), ``readers/``
(one module per reader; ``readers/__init__.py`` is the registry, :data:`READERS` in detection order, and
``open_corpus``), ``crops.py`` (training datasets), ``cache.py`` (the resampled audio cache), ``pitch.py`` (the
F0 cache), ``codes.py`` (codes on disk), ``alignments.py`` / ``phones.py``, and the image sets (``images.py``,
``sprites.py``, ``semi.py``).

``audiolvm.data`` imports only ``audiolvm.core``, the standard library, numpy, torch, soundfile, tqdm and
(lazily, in :class:`HFDatasetReader`) ``datasets``; the image sets lazily import scikit-learn and, optionally,
scikit-image.
"""

from audiolvm.data.cache import CachedReader, ResampledCache
from audiolvm.data.codes import CodeItem, CodeMapDataset, CodeStore, CodeWindowDataset, CodeWriter, LevelInfo
from audiolvm.data.crops import CropDataset, UtteranceDataset
from audiolvm.data.entry import CorpusError, Entry
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
from audiolvm.data.layout import AUDIO_EXTENSIONS
from audiolvm.data.manifest import ScanResult
from audiolvm.data.pitch import PitchTable
from audiolvm.data.readers import (
    READERS,
    CorpusReader,
    FileCorpusReader,
    FolderReader,
    HFDatasetReader,
    LibriSpeechReader,
    MusicCorpusReader,
    Utterance,
    VCTKReader,
    detect_kind,
    iter_audio,
    open_corpus,
    reader_class,
    skip_summary,
)
from audiolvm.data.splits import split_entries, unseen_speakers
from audiolvm.data.sprites import DSpritesStyle

__all__ = [
    "AUDIO_EXTENSIONS",
    "READERS",
    "CachedReader",
    "CodeItem",
    "CodeMapDataset",
    "CodeStore",
    "CodeWindowDataset",
    "CodeWriter",
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
    "LevelInfo",
    "LibriSpeechReader",
    "MusicCorpusReader",
    "PitchTable",
    "ResampledCache",
    "ScanResult",
    "Utterance",
    "UtteranceDataset",
    "VCTKReader",
    "detect_kind",
    "digits_dataset",
    "digits_split",
    "iter_audio",
    "lfw_subset_dataset",
    "mnist_dataset",
    "open_corpus",
    "read_idx",
    "reader_class",
    "skip_summary",
    "split_entries",
    "split_indices",
    "unseen_speakers",
]
