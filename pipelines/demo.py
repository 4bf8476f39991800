"""The main job on the embedded corpora: for speech (1 level, speaker-conditioned decoder) and music
(3 levels, hops 8/32/128), train the VQ-VAE, encode the corpus to codes on disk, score held-out
reconstructions per level, and write examples; fine-tune the speech model adversarially (discriminators,
warm start) and compare before / after; then train priors on those codes and sample music and
speech; convert held-out speech to other voices and score it with an independent speaker classifier (and to
and from a voice the speech model never heard: reference clip, few-shot enrolment);
probe the speech codes for phones; train a VAE and an IWAE on the digits (samples, traversal grid,
importance-sampled NLL) and an image VQ-VAE with a PixelCNN prior over its codes; and write a report.

Outputs (under --out, default outputs/demo), for each of speech and music:
  <corpus>_vqvae/             run folder: checkpoints, model.safetensors, config.json, curves.png, eval/
  <corpus>_codes/             per-level codes of the whole corpus (input of the priors)
  <corpus>_examples/          held-out originals beside each level's reconstruction (WAV) + spectrograms
  speech_vqvae_gan/           the speech model fine-tuned with discriminators (warm start), its scores before
                              and after, and spectrograms before / after in examples/
  prior runs, <corpus>_samples/  priors over the codes and sampled audio
  speaker_classifier/, vc/    the classifier and the conversion scores, bar plot, converted WAVs; vc/unseen.md
                              and vc/unseen_examples/ for the voice held out of the speech model
  probe/                      phone-probe tables, JSON, confusion matrix
  images/                     VAE / IWAE runs on the digits, sample and traversal grids, NLL table;
                              the image VQ-VAE and its PixelCNN prior (class-conditional samples)
  report.md, report.json      all of the above in one place
  report.html                 the same as one self-contained page: players beside spectrograms, curves with
                              tooltips, the tables (audiolvm report PATH rewrites it; --link for small files)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from audiolvm.core.errors import UsageError
from audiolvm.core.files import atomic_write_json, atomic_write_text
from audiolvm.report import write_report
from audiolvm_pipelines import demo_gan, demo_images, demo_priors, demo_vc
from audiolvm_pipelines.demo_audio import STAGES, report_section, run_stage

HELP = "run the demo pipeline on the embedded corpora"


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="outputs/demo", help="report folder")
    p.add_argument("--stages", default="speech,music,gan,priors,vc,probe,images",
                   help="comma-separated subset of: speech,music,gan,priors,vc,probe,images (priors needs speech and "
                        "music; gan, vc and probe need speech; images is independent of the audio)")
    p.add_argument("--prior-steps", type=int, default=None, help="override the priors' training steps")
    p.add_argument("--examples", type=int, default=3, help="held-out items to reconstruct per corpus")
    p.add_argument("overrides", nargs="*", help="key=value overrides applied to every stage's config")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    names = [s.strip() for s in args.stages.split(",") if s.strip()]
    if unknown := set(names) - set(STAGES) - {"gan", "priors", "vc", "probe", "images"}:
        raise UsageError(f"--stages: unknown {sorted(unknown)}; choose from {sorted(STAGES)}, gan, priors, vc, probe, "
                         "images")
    stages = [run_stage(name, out, args.overrides, args.examples) for name in names if name in STAGES]
    gan = demo_gan.run_gan(out, overrides=tuple(args.overrides)) if "gan" in names else None
    priors = demo_priors.run_priors(out, args.prior_steps) if "priors" in names else None
    vc = demo_vc.run_vc(out) if "vc" in names else None
    probed = demo_vc.run_probe(out) if "probe" in names else None
    images = demo_images.run_images(out) if "images" in names else None
    atomic_write_json(out / "report.json", {"stages": stages, "gan": gan, "priors": priors, "vc": vc, "probe": probed,
                                            "images": images})
    lines = ["# audiolvm demo report", ""] + [line for stage in stages for line in report_section(stage)]
    lines += demo_gan.report_lines(gan) if gan else []
    lines += demo_priors.report_lines(priors) if priors else []
    lines += demo_vc.report_lines(vc, probed)
    lines += demo_images.report_lines(images) if images else []
    atomic_write_text(out / "report.md", "\n".join(lines))
    print("\n".join(lines))
    print(f"\nreport page (players beside spectrograms, curves, tables): {write_report(out)}")
    return 0
