"""The page of the demo's output folder (``audiolvm demo``), from its ``report.json`` (keys ``stages``, ``gan``,
``priors``, ``vc``, ``probe``, ``images``) and the files each stage wrote beside it: a section per stage that ran,
with its tables, training curves, figures, and players beside spectrograms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audiolvm.builders.runs import read_run_config, recorded_kind
from audiolvm.core.errors import UsageError
from audiolvm.core.files import read_json
from audiolvm.report.collect import (
    curves_section,
    examples_in,
    figures_in,
    players_in,
    reproduce_command,
    vc_examples,
)
from audiolvm.report.media import MediaFiles
from audiolvm.report.page import Block, Page, Section, Text
from audiolvm.report.tables import labelled_table, mapping_table, markdown_blocks, records_table

REPORT_JSON = "report.json"  #: what marks the demo's folder (pipelines/demo.py writes it)
DEMO_KEYS = ("stages", "gan", "priors", "vc", "probe", "images")
PRIOR_COLUMNS = ("name", "kind", "level", "steps", "train_seconds", "nats_per_code", "bits_per_code")
IMAGE_COLUMNS = ("name", "k", "steps", "train_seconds", "nll", "neg_elbo", "bpd", "active_units", "latent_dim",
                 "mutual_information")


def _with_curves(section: Section, run: Path) -> Section:
    """``section`` with the training curves of ``run`` (a subsection) and the command that trains it again."""
    if (config := run / "config.json").is_file():
        section.command = reproduce_command(run, recorded_kind(read_run_config(config), str(config)))
    if curves := curves_section(run, f"Training curves ({run.name})"):
        curves.collapsed = True  # many charts per run: folded on the demo's page
        section.subsections.append(curves)
    return section


def vqvae_section(root: Path, stage: dict[str, Any], media: MediaFiles) -> Section:
    """A VQ-VAE stage (speech, music): training, per-level metrics, codebook usage, curves, examples."""
    name, hops = stage["name"], stage.get("hops", [])
    blocks: list[Block] = [
        Text.of(f"Trained {stage.get('steps')} steps in {stage.get('train_seconds', 0):.0f} s "
                f"(`{stage.get('config')}`). Held-out reconstruction ({stage.get('held_out_items')} items; SI-SDR "
                "in dB, higher is better; distances, lower is better):"),
        records_table(stage.get("metrics", [])),
    ]
    if usage := stage.get("corpus_usage"):
        blocks += [Text.of("Codebook usage over the whole corpus:"), records_table(usage)]
    section = Section(f"{name.capitalize()}: {len(hops)}-level VQ-VAE, hops {hops}", blocks,
                      examples=examples_in(root / f"{name}_examples", media))
    return _with_curves(section, root / f"{name}_vqvae")


def gan_section(root: Path, gan: dict[str, Any], media: MediaFiles) -> Section:
    blocks: list[Block] = [
        Text.of(f"The speech model fine-tuned {gan.get('steps')} steps with discriminators {gan.get('discriminators')} "
                f"(the generator's adversarial terms from step {gan.get('start_step')}) in {gan.get('seconds', 0):.0f}"
                f" s; {gan.get('items')} held-out items."),
        labelled_table(gan.get("rows", {}), "model"),
    ]
    if disc := gan.get("discriminator_table"):
        blocks += [Text.of("The run's own discriminators on the same items:"), *markdown_blocks(disc)]
    figures = [media.image(root / f, f"original / before / after: {Path(f).stem}") for f in gan.get("figures", [])
               if (root / f).is_file()]
    return _with_curves(Section("Adversarial fine-tuning (speech)", blocks, figures=figures), root / "speech_vqvae_gan")


def priors_section(root: Path, priors: dict[str, Any], media: MediaFiles) -> Section:
    """The priors' held-out scores, each corpus' samples (players beside spectrograms, speech pitch tracks), and
    the music chain measured stage by stage with its continuations."""
    section = Section("Priors over the codes", [records_table(priors.get("scores", []), PRIOR_COLUMNS)])
    for draw in priors.get("samples", []):
        corpus = draw.get("corpus", "")
        folder = root / f"{corpus}_samples"
        text = (f"{draw.get('n')} samples of {draw.get('seconds')} s at temperature {draw.get('temperature')}, "
                f"top-p {draw.get('top_p')} (top-down), drawn in {draw.get('wall_seconds', 0):.1f} s.")
        section.subsections.append(Section(f"{corpus.capitalize()} samples", [Text.of(text)],
                                           figures=figures_in(folder, media, "pitch.png"),
                                           players=players_in(folder, media, "sample_*")))
    if music := priors.get("music"):
        key = {"own": float("nan"), "other": float("nan")} | music.get("key_agreement", {})
        blocks = [*markdown_blocks(music.get("table", "")),
                  Text.of(f"Key agreement of continuations over {key.get('pairs')} prompts: chroma correlation "
                          f"{key['own']:.2f} with their own prompt, {key['other']:.2f} "
                          "with other tracks'.")]
        section.subsections.append(Section("Music, stage by stage", blocks,
                                           players=players_in(root / "music_samples", media, "continuation_*")))
    return section


def vc_section(root: Path, vc: dict[str, Any], media: MediaFiles) -> Section:
    c = vc.get("classifier", {})
    blocks: list[Block] = [Text.of(f"Speaker classifier (real audio only): {c.get('accuracy', float('nan')):.3f} "
                                   f"accuracy on {c.get('n')} held-out real utterances; conversions scored in "
                                   f"{vc.get('seconds', 0):.0f} s."), *markdown_blocks(vc.get("table", ""))]
    section = Section("Voice conversion", blocks, figures=figures_in(root / "vc", media, "vc_accuracy.png"),
                      examples=vc_examples(root / "vc" / "examples", media, root / "speech_vqvae"))
    if unseen := vc.get("unseen"):
        section.subsections.append(Section("A voice the VQ-VAE never heard", markdown_blocks(unseen, top=4),
                                           examples=vc_examples(root / "vc" / "unseen_examples", media)))
    return section


def probe_section(root: Path, probe: dict[str, Any], media: MediaFiles) -> Section:
    return Section("Phoneme probe of the speech codes", markdown_blocks(probe.get("table", "")),
                   figures=figures_in(root / "probe", media, "confusion_level*.png"))


def images_section(root: Path, images: dict[str, Any], media: MediaFiles) -> Section:
    """The VAE / IWAE NLL table and grids, then the image VQ-VAE and its PixelCNN prior."""
    folder = root / "images"
    section = Section("Images: VAE and IWAE on binarized 8x8 digits", [
        Text.of(f"NLL in nats per image (importance sampling, K={images.get('samples')}), lower is better; a uniform "
                f"model of binary 8x8 images scores {images.get('binary_anchor', float('nan')):.1f}."),
        records_table(images.get("models", []), IMAGE_COLUMNS)],
        figures=[f for m in images.get("models", [])
                 for f in figures_in(folder / str(m.get("name")) / "eval", media, label=f"{m.get('name')}: ")])
    if vq := images.get("vq"):
        section.subsections.append(Section("Image VQ-VAE with a PixelCNN prior",
                                           [mapping_table(vq, skip=("grids",))],
                                           figures=figures_in(folder / "pixelcnn_vqvae_digits" / "eval", media,
                                                              label="pixelcnn_vqvae_digits: ")))
    return section


def demo_page(root: Path, media: MediaFiles) -> Page:
    """The page of the demo folder ``root``: a section for each stage its ``report.json`` holds."""
    report = read_json(root / REPORT_JSON, "run 'audiolvm demo' again")
    if not isinstance(report, dict) or not set(report) & set(DEMO_KEYS):
        raise UsageError(f"{root / REPORT_JSON}: not the demo's report (expected a mapping with keys among "
                         f"{', '.join(DEMO_KEYS)}); pass the folder 'audiolvm demo' wrote")
    sections = [vqvae_section(root, stage, media) for stage in report.get("stages") or []]
    parts = {"gan": gan_section, "priors": priors_section, "vc": vc_section, "probe": probe_section,
             "images": images_section}
    sections += [make(root, report[key], media) for key, make in parts.items() if report.get(key)]
    return Page("audiolvm demo report", root, sections)
