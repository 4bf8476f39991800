# audiolvm: `make demo` runs the main job, `make test` runs the tests. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check

.PHONY: setup setup-dev demo test bench lint corpus music-corpus clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch is pinned and installed first, so no later requirement pulls a different (CUDA) build
$(VENV)/.torch-$(TORCH_VERSION): | $(PY)
	$(PIP) torch==$(TORCH_VERSION)
	touch $@

$(VENV)/.installed: pyproject.toml $(VENV)/.torch-$(TORCH_VERSION)
	$(PIP) -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(PIP) -e ".[dev]"
	touch $@

setup: $(VENV)/.installed
setup-dev: $(VENV)/.installed-dev

demo: setup  ## train the speech VQ-VAE on data/speech, reconstruct, report (outputs/demo)
	$(VENV)/bin/audiolvm demo $(ARGS)

test: setup-dev  ## run the test suite
	$(PY) -m pytest $(ARGS)

bench: setup-dev  ## run the benchmarks (see BENCHMARKS.md)
	$(PY) benchmarks/bench_vq.py
	$(PY) benchmarks/bench_multilevel.py
	$(PY) benchmarks/bench_kv_cache.py
	$(PY) benchmarks/bench_sampling.py
	$(PY) benchmarks/bench_pitch.py
	$(PY) benchmarks/bench_speech_step.py

gpu-check: setup-dev  ## on a CUDA machine: tests, benchmarks, a 200-step train, figures in gpu_check.json (ARGS=--dry-run on a CPU)
	$(PY) benchmarks/gpu_check.py --out gpu_check.json $(ARGS)

lint: setup-dev
	$(PY) -m ruff check audiolvm pipelines data_scripts tests benchmarks
	$(PY) -m mypy

corpus: setup  ## regenerate the embedded speech corpus (needs espeak-ng)
	$(PY) data_scripts/make_speech_corpus.py --out data/speech --speakers 12 --sentences 18 --rate 16000 --seed 0 --wpm-range 155 190 --pitch-range 40 60 --shared-fraction 0.2 --min-words 5 --max-words 8 --gain 0.5 --bits 12 --textgrid-digits 7

music-corpus: setup-dev  ## regenerate the embedded music corpus (needs fluidsynth + fluid-soundfont-gm)
	$(PY) data_scripts/make_music_corpus.py --out data/music --n 28 --rate 16000 --seed 0 --soundfont /usr/share/sounds/sf2/FluidR3_GM.sf2 --max-seconds 20.0 --synth-rate 44100 --fs-gain 0.8 --gain 1.0 --bits 12 --max-tail 1.0 --crop-fade 0.5

clean:
	rm -rf outputs runs .pytest_cache
