"""Demo stage ``gan``: fine-tune the demo speech VQ-VAE adversarially for a short budget (see ``pipelines/demo.py``).

The speech stage's run is the warm start (``train.init_from``); ``configs/demo/speech_vqvae_gan.yaml`` adds a
multi-period and a multi-scale STFT discriminator. The stage scores the warm start and the fine-tuned model on the
same held-out items (mel / MR-STFT distance, SI-SDR, F0 error, voicing error, PESQ, STOI), asks the run's own
discriminators how real each looks, and draws held-out items' spectrograms before and after side by side.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from audiolvm.builders import load_discriminators, load_model, split_entries_for
from audiolvm.core.errors import MissingFileError
from audiolvm.eval import evaluate_model
from audiolvm.eval.adversarial import discriminator_scores
from audiolvm.eval.evaluate import compare_spectrograms, speech_pitch_settings
from audiolvm_pipelines import train
from audiolvm_pipelines.demo_common import parsed

log = logging.getLogger("audiolvm.demo")
CONFIG = "configs/demo/speech_vqvae_gan.yaml"
COLUMNS = ("mel_distance", "mrstft_distance", "si_sdr_db", "f0_cents_median", "vde", "pesq_wb", "stoi")


def run_gan(out: Path, steps: int | None = None, examples: int = 2, overrides: tuple[str, ...] = ()) -> dict:
    """Fine-tune ``out/speech_vqvae`` into ``out/speech_vqvae_gan``, score both, draw spectrograms; returns what
    the report shows."""
    source, run_dir = out / "speech_vqvae", out / "speech_vqvae_gan"
    if not (source / "model.safetensors").is_file():
        raise MissingFileError(f"{source}: the gan stage fine-tunes the speech stage's model; run --stages speech "
                                "first (or together: --stages speech,gan)")
    t0 = time.time()
    log.info("[gan 1/2] adversarial fine-tuning of %s", source)
    extra = [f"train.out_dir={run_dir}", f"train.init_from={source}"] + ([f"train.max_steps={steps}"] if steps else [])
    train.run(parsed(train, CONFIG, *overrides, *extra))
    seconds = time.time() - t0
    log.info("[gan 2/2] scoring before and after on held-out speech")
    model, cfg = load_model(run_dir)
    models = {"before (warm start)": load_model(source)[0], "after (adversarial)": model}
    reader, selected = split_entries_for(cfg, "valid")
    entries = [e for e, _ in selected]
    pitch = speech_pitch_settings(model, cfg.data.sample_rate)
    rows = {}
    for label, m in models.items():
        report = evaluate_model(m, reader, entries, cfg.data.sample_rate, progress=False, pitch=pitch)
        rows[label] = {k: report.rows()[0][k] for k in COLUMNS}
    disc = load_discriminators(run_dir)
    scores = discriminator_scores(disc, model, reader, entries, cfg.data.sample_rate) if disc is not None else None
    pngs = compare_spectrograms(models, reader, entries[:examples], cfg.data.sample_rate, run_dir / "examples",
                                "before and after adversarial fine-tuning")
    figures = [str(png.relative_to(out)) for png in pngs]
    return {"seconds": seconds, "steps": cfg.train.max_steps, "start_step": cfg.adv.start_step,
            "discriminators": cfg.adv.discriminators, "items": len(entries), "rows": rows,
            "discriminator_scores": scores.summary() if scores is not None else None,
            "discriminator_table": scores.to_markdown() if scores is not None else "", "figures": figures}


def report_lines(gan: dict) -> list[str]:
    header = "| model | " + " | ".join(COLUMNS) + " |"
    table = [header, "|---|" + "---:|" * len(COLUMNS)]
    for label, row in gan["rows"].items():
        table.append(f"| {label} | " + " | ".join("-" if row[k] is None else f"{row[k]:.3f}" for k in COLUMNS) + " |")
    return [
        "## Adversarial fine-tuning (speech)", "",
        f"The speech model above, fine-tuned {gan['steps']} steps with discriminators {gan['discriminators']} "
        f"(`{CONFIG}`; the generator's adversarial terms from step {gan['start_step']}) in {gan['seconds']:.0f} s. "
        f"Held-out items: {gan['items']}. A CPU budget this short shows the mechanism, not the gain: "
        "RESULTS.md (adversarial training) has the runs at equal wall-clock.", "",
        *table, "",
        "The run's own discriminators on the same items:", "", gan["discriminator_table"], "",
        "Spectrograms, original / before / after: " + ", ".join(f"![]({f})" for f in gan["figures"]), "",
    ]
