# avsoundscape: the two commands of the README, and their helpers.
#   make repro   install what is missing, then run the main job (dvc repro)
#                (PROFILE=cpu-long|paper|tiny first merges profiles/PROFILE.yaml into params.yaml)
#   make test    install what is missing, then run the whole test suite
#   make bench   the benchmarks of bench/ (after make repro); rewrites the README's performance section
#   make fuzz    fuzz the file readers longer than the tests do (FUZZ_SECONDS each); grows tests/fuzz/corpus
# The virtual env lives outside the checkout, keyed by a hash of requirements.lock,
# so a second run on the same machine reuses it; a fresh machine builds it from nothing.
# The env counts as built only once `.complete` is written: an interrupted build is redone.

SHELL := /bin/bash
PYTHON ?= python3.11
AVS_CACHE ?= $(HOME)/.cache/avsoundscape
PINS_HASH := $(shell sha256sum requirements.lock | cut -c1-16)
ENV := $(AVS_CACHE)/env-$(PINS_HASH)
BIN := $(ENV)/bin
APT_PKGS := ffmpeg flite espeak-ng sox git chromium
# Real recordings and photographs (real voices, field recordings, photos) for SynthScapes and the realdev set:
# Debian packages, pinned, fetched with apt-get download and unpacked into $(MATERIAL) (never installed system-wide);
# avsoundscape.material lists which files of each it uses, with their licences.
MATERIAL_DEBS := fillets-ng-data-cs=1.0.1-1.1 fillets-ng-data-nl=1.0.1-1.1 asterisk-core-sounds-en-g722=1.6.1-1 \
  asterisk-core-sounds-it-g722=1.6.1-1 asterisk-core-sounds-ru-g722=1.6.1-1 scorched3d-data=44+dfsg-8 \
  minetest-data=5.6.1+dfsg+~1.9.0mt8+dfsg-2 tuxpaint-data=1:0.9.28-sdl2-1 mate-backgrounds=1.26.0-1
MATERIAL := $(AVS_CACHE)/material
export AVS_MATERIAL := $(MATERIAL)
export DVC_NO_ANALYTICS := 1
export PYTHONHASHSEED := 0

.PHONY: repro test env system material lib readme bench fuzz clean-env

repro: env
	$(if $(PROFILE),"$(BIN)/avsoundscape" params $(PROFILE) -o params.yaml)
	"$(BIN)/dvc" pull -q data.dvc
	PATH="$(BIN):$$PATH" "$(BIN)/dvc" repro

test: env
	bash tests/run_all.sh "$(BIN)"

env: system material $(ENV)/.complete lib

# Debian packages: each command named in APT_PKGS comes from the package of the same name.
system:
	@missing=""; for p in $(APT_PKGS); do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	$(PYTHON) -c "import ensurepip, venv" 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  command -v apt-get >/dev/null || { echo "missing:$$missing; install them with your package manager" >&2; exit 1; }; \
	  echo "apt-get: installing$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi

# Each material package once per machine: a folder counts as unpacked only once `.complete` (its package and version) is written.
material:
	@mkdir -p "$(MATERIAL)"; for spec in $(MATERIAL_DEBS); do p="$${spec%%=*}"; \
	  [ -f "$(MATERIAL)/$$p/.complete" ] && continue; \
	  echo "material: $$spec (apt-get download, unpacked into $(MATERIAL)/$$p)"; \
	  d="$$(mktemp -d)"; \
	  ( cd "$$d" && { apt-get download -qq "$$spec" 2>/dev/null || { apt-get update -qq && apt-get download -qq "$$spec"; }; } ) || exit 1; \
	  rm -rf "$(MATERIAL)/$$p" && mkdir -p "$(MATERIAL)/$$p" && dpkg-deb -x "$$d"/*.deb "$(MATERIAL)/$$p" && \
	  dpkg-deb -f "$$d"/*.deb Package Version > "$(MATERIAL)/$$p/.complete"; rm -rf "$$d"; done

# No prerequisite on purpose: the folder name already carries the hash of the pins, and a fresh
# clone's file dates must not force a rebuild of an env that matches.
$(ENV)/.complete:
	@echo "building the Python env in $(ENV) (first run on this machine: several minutes)"
	rm -rf "$(ENV)" && mkdir -p "$(AVS_CACHE)"
	$(PYTHON) -m venv "$(ENV)"
	set -o pipefail; "$(BIN)/pip" install -q --no-input -r requirements.lock 2>&1 \
	  | { grep -v "is ignored: it is neither a file nor a directory" || true; }
	"$(BIN)/python" -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch "$@"

# The package itself: editable, against this checkout, no dependency resolution (seconds).
lib:
	@"$(BIN)/pip" install -q --no-input --no-deps --no-build-isolation -e . >/dev/null

# README.md is generated from nbs/index.ipynb (quarto, which nbdev_readme needs, is not installable here).
# With the main job's results (results/figures/results.md), their section of nbs/index.ipynb is rewritten first.
readme:
	@if [ -f results/figures/results.md ]; then "$(BIN)/python" tools/sections.py results results/figures/results.md nbs/index.ipynb; fi
	"$(BIN)/jupyter" nbconvert --log-level WARN --to markdown --output-dir . --output README nbs/index.ipynb

# Benchmarks (bench/): speed against a diffusers-style loop, sampler steps, throughput, memory; about 10 minutes on
# 2 cores. They read the main job's outputs (SynthScapes, pairs, the RT60 estimator): `make repro` first.
bench: env
	PATH="$(BIN):$$PATH" "$(BIN)/python" bench/run.py

# Fuzz the readers (tests/fuzz/readers.py, atheris) for FUZZ_SECONDS each; the inputs it finds join
# tests/fuzz/corpus/<target> (commit them), a failing input is written to tests/fuzz/ and stops the run.
FUZZ_SECONDS ?= 300
fuzz: env
	@for t in audio video image checkpoint; do echo "fuzz: $$t, $(FUZZ_SECONDS) s"; \
	  OMP_NUM_THREADS=1 "$(BIN)/python" tests/fuzz/readers.py $$t tests/fuzz/corpus/$$t -max_total_time=$(FUZZ_SECONDS) \
	    -timeout=20 -rss_limit_mb=4096 -artifact_prefix=tests/fuzz/ -print_final_stats=1 || exit 1; done

clean-env:
	rm -rf "$(ENV)"
