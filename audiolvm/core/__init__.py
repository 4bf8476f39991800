"""Tensor and signal utilities: audio I/O, features, seeding, distributed helpers."""

from audiolvm.core.audio import AudioError, AudioInfo, audio_info, load_audio, resample, save_audio

__all__ = ["AudioError", "AudioInfo", "audio_info", "load_audio", "resample", "save_audio"]
