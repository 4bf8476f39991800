# audiolvm: `make demo` runs the main job, `make test` runs the tests. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check

.PHONY: setup setup-dev system-deps demo test bench lint corpus music-corpus clean

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

# System packages (Debian names) that some tests need; without one, those tests skip. Each has the check that it is
# there, and the tests that skip without it.
SYSTEM_DEPS := espeak-ng fluidsynth timgm6mb-soundfont festival festvox-kallpc16k festvox-kdlpc16k chromium \
	chromium-driver
have_espeak-ng := { ldconfig -p || /sbin/ldconfig -p; } 2>/dev/null | grep -q 'libespeak-ng\.so\.1'
have_fluidsynth := command -v fluidsynth
have_timgm6mb-soundfont := test -f /usr/share/sounds/sf2/TimGM6mb.sf2
have_festival := command -v festival
have_festvox-kallpc16k := dpkg -s festvox-kallpc16k
have_festvox-kdlpc16k := dpkg -s festvox-kdlpc16k
have_chromium := command -v chromium
have_chromium-driver := test -x /usr/bin/chromedriver
skips_espeak-ng := test_speech_corpus
skips_fluidsynth := test_music_corpus test_music_measures
skips_timgm6mb-soundfont := test_music_corpus
skips_festival := test_festival_corpus
skips_festvox-kallpc16k := test_festival_corpus
skips_festvox-kdlpc16k := test_festival_corpus
skips_chromium := test_report_browser
skips_chromium-driver := test_report_browser

# As root or with passwordless sudo: apt-get install what is missing. Otherwise (or when apt-get fails): one line
# naming the missing packages, the tests that will skip and the command to run. Never fails the build.
system-deps:  ## install the missing system packages the tests use (espeak-ng, fluidsynth, festival, chromium, ...)
	@missing=""; skips=""; \
	$(foreach p,$(SYSTEM_DEPS),( $(have_$(p)) ) >/dev/null 2>&1 || { missing="$$missing $(p)"; skips="$$skips $(skips_$(p))"; };) \
	[ -z "$$missing" ] && exit 0; \
	skips=$$(echo $$skips | tr ' ' '\n' | grep . | sort -u | sed 's|^|tests/|; s|$$|.py|' | paste -sd ' ' -); \
	if [ "$$(id -u)" -eq 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else sudo="no"; fi; \
	if [ "$$sudo" != "no" ] && command -v apt-get >/dev/null 2>&1; then \
		echo "system-deps: installing$$missing"; \
		$$sudo apt-get update -qq && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends $$missing && exit 0; \
		echo "system-deps: apt-get failed;" \
			"missing$$missing; these tests will skip: $$skips; retry with: sudo apt-get install$$missing"; \
	else \
		echo "system-deps: missing$$missing; these tests will skip: $$skips; to install them:" \
			"sudo apt-get install$$missing"; \
	fi; exit 0

demo: setup system-deps  ## train the speech VQ-VAE on data/speech, reconstruct, report (outputs/demo)
	$(VENV)/bin/audiolvm demo $(ARGS)

test: setup-dev system-deps  ## run the test suite
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
