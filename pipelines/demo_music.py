"""The demo's music chain, measured stage by stage (``audiolvm.eval.music``): the top prior's codes decoded by the
level-2 decoder, the full chain (top prior -> upsampler -> level-1 decoder), the upsampler alone on real held-out
level-2 codes, and continuations of held-out prompts, against the held-out originals, their reconstructions, other
real tracks and white noise."""

from __future__ import annotations

from pathlib import Path

from audiolvm.builders import load_chain, split_entries_for
from audiolvm.core.audio import save_audio
from audiolvm.core.files import atomic_write_text
from audiolvm.data import Entry
from audiolvm.eval import plot_spectrograms
from audiolvm.eval.music import chain_waves, key_agreement, music_report
from audiolvm.models.chain import SamplingChain, per_level

# the music chain's sampling, top-down (top prior, upsampler): a cooler upsampler keeps more of the top level's
# harmony (RESULTS.md, music section)
TEMPERATURE, TOP_P = (1.0, 0.8), (0.9, 0.9)


def measure_music(out: Path, seconds: float = 6.0, prime_seconds: float = 2.0) -> dict:
    """Where does the chain keep or lose the music? The measures of each stage's output (one clip per
    held-out track and seed offset), of continuations of held-out prompts, and their key agreement."""
    chain, cfg = load_chain(out / "music_vqvae", [out / "music_prior_top", out / "music_upsampler"])
    music = per_level(chain.levels, TEMPERATURE, TOP_P)
    reader, entries = split_entries_for(cfg, "all")  # one corpus scan for both splits
    held = [e for e, split in entries if split == "valid"]
    first_train: dict[str, Entry] = {}  # one training track per ensemble: the "other real tracks" anchor
    for e, split in entries:
        if split == "train":
            first_train.setdefault(e.speaker, e)
    rate = cfg.data.sample_rate
    others = [first_train[label] for label in sorted({e.speaker for e in held}) if label in first_train]
    report = music_report(chain.model, reader, held, rate, range(chain.model.num_levels), others=others)
    clips, labels = report.reference, report.labels
    top, low = max(chain.levels), chain.lowest
    top_only = SamplingChain(chain.model, chain.stages[:1], rate)
    report.add(f"top prior -> level-{top} decoder", chain_waves(top_only, labels * 2, seconds, music))
    samples = chain_waves(chain, labels * 4, seconds, music)  # the target row: more clips, a steadier estimate
    report.add(f"top prior -> upsampler -> level-{low} decoder (the samples)", samples)
    report.add(f"held-out level-{top} codes -> upsampler -> level-{low} decoder",
               chain_waves(chain, labels, seconds, music, real=clips, start_level=top))
    span, cut = int(seconds * rate), int(prime_seconds * rate)
    prompts = [(i, c[o : o + span]) for i, c in enumerate(clips) for o in range(0, len(c) - span + 1, 2 * span)]
    primed = chain_waves(chain, [labels[i] for i, _ in prompts], seconds, music, real=[c for _, c in prompts],
                         prime_seconds=prime_seconds)
    report.add(f"continuations of {prime_seconds:.0f} s held-out prompts (after the prompt)", [w[cut:] for w in primed])
    key = key_agreement([c[:cut] for _, c in prompts], [w[cut:] for w in primed], rate, [i for i, _ in prompts])
    folder = out / "music_samples"
    for i, (wave, (_, clip)) in enumerate(zip(primed, prompts, strict=True)):
        save_audio(folder / f"continuation_{i:02d}.wav", wave, rate)
        plot_spectrograms({"original": clip[: len(wave)], f"prompt {prime_seconds:.0f} s + continuation": wave}, rate,
                          folder / f"continuation_{i:02d}.png")
    atomic_write_text(folder / "music_measures.md", report.to_table() + "\n")
    report.write_json(str(folder / "music_measures.json"), {"key_agreement": key})
    return {"table": report.to_table(), "rows": report.as_dicts(), "key_agreement": key,
            "seconds": seconds, "prime_seconds": prime_seconds}


def report_lines(m: dict) -> list[str]:
    """The report's music section from :func:`measure_music`'s result (plus its ``wall_seconds``)."""
    key = m["key_agreement"]
    return ["", "### Music, stage by stage", "",
           f"Music measures (`audiolvm.eval.music`; RESULTS.md explains each and its anchors) against the "
           f"held-out chorales, {m['seconds']:.0f} s clips, in {m['wall_seconds']:.0f} s. Chroma: energy share "
           "of the 3 strongest pitch classes per frame (higher is more tonal); flatness: 0 tone, 0.56 white "
           "noise; Fréchet distances to the originals' log-mel frames and to their top-level encoder "
           "features (lower is closer).", "", m["table"], "",
           f"Do continuations keep the prompt's key? Over {key['pairs']} prompts of {m['prime_seconds']:.0f} s "
           f"(from every {2 * m['seconds']:.0f} s of the held-out tracks), the chroma correlation of a prompt "
           f"with its own continuation is {key['own']:.2f}, against {key['other']:.2f} with other tracks' "
           "continuations. Prompt + continuation: `music_samples/continuation_*.wav|png`."]
