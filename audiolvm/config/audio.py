"""The audio family's schemas: the VQ-VAE (data, model, losses, discriminators) and the speaker classifier."""

from __future__ import annotations

from dataclasses import dataclass, field

from audiolvm.config.common import TrainConfig, VQConfig, per_level


@dataclass
class DataConfig:
    root: str = "data/speech"  # corpus folder (VCTK, LibriSpeech or plain folder layout)
    kind: str = "auto"  # auto | vctk | librispeech | music | folder
    sample_rate: int = 16000
    crop_seconds: float = 1.0
    valid_fraction: float = 0.05
    split_by: str = "utterance"  # utterance | speaker
    batch_size: int = 8
    num_workers: int = 0
    split_seed: int = 0
    # whole speakers left out of training and validation (chosen by split_seed), for conversion to voices the
    # model has never heard (`audiolvm evaluate-vc --unseen`, `audiolvm enroll`); 0 = none
    unseen_speakers: int = 0
    unseen_names: list[str] = field(default_factory=list)  # which speakers instead of a draw (as many as the count)
    # resampled: files at another rate than sample_rate are decoded and resampled once into an int16 cache beside
    # the corpus (audiolvm.data.cache), so a crop is a memory copy; none: every crop decodes and resamples its file
    cache: str = "none"


@dataclass
class SpeakerConfig:
    """Speaker-conditioned decoding (voice conversion): a global speaker vector in every decoder stage."""

    levels: list[int] = field(default_factory=list)  # decoder levels that take the speaker; [] = off
    dim: int = 64  # speaker embedding width
    mode: str = "film"  # film (scale + shift per channel) | concat (concatenate, 1x1 conv)
    encoder: bool = False  # also train a speaker encoder (log-mel -> vector) for unseen reference clips
    # trained: log-mel convs learned with the model; ge2e: Resemblyzer's pretrained GE2E encoder (real voices),
    # frozen, then a learned linear map (needs `pip install 'audiolvm[speaker]'` and 16 kHz audio)
    encoder_kind: str = "trained"
    encoder_mix: float = 0.5  # fraction of training items decoded with the encoder's vector, not the table's
    # (the encoder's matching loss is weighted by loss.weights["speaker/encoder"], default 1)
    n_mels: int = 64  # speaker encoder input
    # speaker-invariance pressure on the codes: a frame-wise speaker classifier on the quantized frames of the
    # finest speaker level behind a gradient reversal of this scale (0 = off); its loss is
    # loss.weights["speaker/adversary"] (default 1), its accuracy is logged as speaker/adversary_acc
    adversary: float = 0.0
    adversary_width: int = 128
    adversary_pool: bool = False  # one speaker prediction per crop (mean of the frames' logits), not per frame
    # one speaker prediction per crop by a linear classifier on its soft code histogram (the speaker probe's form)
    adversary_histogram: bool = False
    names: list[str] = field(default_factory=list)  # training speakers, filled from the corpus at train time


@dataclass
class PitchConfig:
    """The pitch path of a speech decoder (off by default): a neural source-filter excitation from frame-rate
    F0 and voicing, and a jointly trained F0 / voicing predictor from the codes and the speaker vector."""

    levels: list[int] = field(default_factory=list)  # decoder levels that take F0; [] = off (music)
    method: str = "dio"  # F0 extractor: dio (pyworld DIO + StoneMask) | harvest | pyin (librosa)
    hop: int = 64  # samples between F0 frames (must divide the hop of every pitch level)
    fmin: float = 50.0
    fmax: float = 600.0
    # nsf: the conv decoder filters an NSF excitation (sines at k * F0 + noise) added at every stage;
    # hpn: a harmonic-plus-noise synthesizer (DDSP) driven by a frame-rate network (nn/synth.py)
    synth: str = "nsf"
    harmonics: int = 8  # sines: NSF's excitation (e.g. 8) or the synthesizer's (e.g. 80); above Nyquist muted
    noise_bands: int = 65  # hpn: linear bands of the noise filter
    synth_width: int = 128  # hpn: channels of the frame-rate network (0: model.width)
    synth_depth: int = 0  # hpn: residual blocks per stage of the frame-rate network (0: model.depth)
    predictor_width: int = 64  # F0 / voicing predictor (codes + speaker -> F0), trained on detached codes
    # per-speaker [mean, std] of ln F0 over voiced frames, filled from the training corpus at train time
    stats: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class ModelConfig:
    kind: str = "audio_vqvae"
    mode: str = "independent"  # independent (Jukebox) | conditioned (VQ-VAE-2); matters with >1 level
    # one list per level: the strides level l adds on top of level l-1; level l's hop is the product of
    # all strides up to l. Jukebox's hops 8/32/128: [[2, 2, 2], [2, 2], [2, 2]].
    strides: list[list[int]] = field(default_factory=lambda: [[2, 2, 2, 2, 2, 2]])
    width: int = 64
    depth: int = 4  # residual blocks per stage
    dilation_growth: int = 3
    checkpoint_stages: int = 0  # highest-rate residual stacks recomputed in backward (saves memory)
    bottleneck: str = "vq"  # vq | identity
    level_weights: list[float] = field(default_factory=lambda: [1.0])  # loss multiplier, per level or one
    jitter: float = 0.0  # time jitter: in training a decoder's code frame is a neighbour's with this probability
    encoder_input: str = "wave"  # wave (strided convs on samples) | mel (log-mel frames every mel_hop samples)
    mel_bins: int = 80  # encoder_input: mel
    mel_hop: int = 64  # encoder_input: mel; must divide every level's hop
    content_norm: str = "none"  # none | instance: each item's encoder output normalised over time before the VQ
    vq: VQConfig = field(default_factory=VQConfig)
    speaker: SpeakerConfig = field(default_factory=SpeakerConfig)
    pitch: PitchConfig = field(default_factory=PitchConfig)

    @property
    def num_levels(self) -> int:
        return len(self.strides)

    @property
    def hops(self) -> list[int]:
        hops, hop = [], 1
        for level in self.strides:
            for s in level:
                hop *= s
            hops.append(hop)
        return hops

    @property
    def hop(self) -> int:
        """The finest level's hop."""
        return self.hops[0]

    def per_level(self, name: str) -> list:
        """A per-level field (``vq.num_codes``, ``vq.beta``, ``level_weights``) expanded to L values."""
        value = getattr(self.vq, name.split(".", 1)[1]) if name.startswith("vq.") else getattr(self, name)
        return per_level(value, self.num_levels, f"model.{name}", " (model.strides)")


@dataclass
class STFTLossConfig:
    fft_sizes: list[int] = field(default_factory=lambda: [2048, 1024, 512])
    hop_sizes: list[int] = field(default_factory=lambda: [240, 120, 50])
    win_sizes: list[int] = field(default_factory=lambda: [1200, 600, 240])


@dataclass
class LossConfig:
    waveform: str = "l1"  # l1 | l2
    weights: dict[str, float] = field(
        default_factory=lambda: {"waveform": 1.0, "stft/sc": 1.0, "stft/logmag": 1.0, "vq/commitment": 1.0}
    )
    stft: STFTLossConfig = field(default_factory=STFTLossConfig)
    # scales (FFT sizes; hop n_fft / 4, n_fft / 8 mel bands) of the multi-scale log-mel L1 term "mel",
    # computed when loss.weights names it (DAC uses 7 windows, 32..2048 samples)
    mel_fft_sizes: list[int] = field(default_factory=lambda: [2048, 1024, 512, 256, 128, 64, 32])


@dataclass
class AdversarialConfig:
    """Adversarial training (HiFi-GAN / EnCodec / DAC): discriminators trained beside the model, their own optimizer
    in ``train.groups.disc``; the generator's terms are weighted in ``loss.weights`` as ``adv/gen`` (default 1) and
    ``adv/feat`` (feature matching, default 2)."""

    discriminators: list[str] = field(default_factory=list)  # mpd | msd | msstft | mbstft; [] = off
    loss: str = "hinge"  # hinge | ls
    start_step: int = 0  # discriminator steps before the generator's adversarial terms switch on
    levels: list[int] = field(default_factory=list)  # levels whose reconstructions are judged; [] = all
    periods: list[int] = field(default_factory=lambda: [2, 3, 5, 7, 11])  # mpd
    scales: int = 3  # msd
    fft_sizes: list[int] = field(default_factory=lambda: [1024, 512, 256])  # msstft, mbstft (hop n_fft / 4)
    channels: int = 16  # width of every discriminator's conv stacks (HiFi-GAN's MPD: 32..1024; ours stay small)
    # EnCodec's gradient balancer: each term's weight sets its share of the gradient at the reconstruction
    balancer: bool = False
    balancer_total: float = 1.0
    balancer_decay: float = 0.999


@dataclass
class ExperimentConfig:
    name: str = "speech_vqvae"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    adv: AdversarialConfig = field(default_factory=AdversarialConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class ClassifierConfig:
    """The independent speaker classifier used to score voice conversion: log-mel + a small 2-D CNN."""

    n_mels: int = 64
    channels: list[int] = field(default_factory=lambda: [32, 64, 128])  # one conv block (2x2 pooling) each
    embed_dim: int = 128
    dropout: float = 0.1
    speakers: list[str] = field(default_factory=list)  # filled from the corpus at train time


@dataclass
class ClassifierExperimentConfig:
    name: str = "speaker_classifier"
    data: DataConfig = field(default_factory=DataConfig)
    model: ClassifierConfig = field(default_factory=ClassifierConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(out_dir="runs/speaker_classifier", lr=1e-3))
