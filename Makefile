# The two commands: `make demo` and `make test`. Everything they need is installed here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEB_PACKAGES := ffmpeg espeak-ng apertium apertium-eng-spa apertium-eng-cat wordnet \
  apertium-spa-cat apertium-es-pt apertium-es-gl apertium-fr-es apertium-es-ro apertium-eo-en apertium-spa-ita \
  fonts-dejavu-core fonts-droid-fallback poppler-utils
STAMP := $(VENV)/.stageflow-installed

.PHONY: install system-deps demo test ui bench clean whisperx

install: system-deps $(STAMP)
	@# bytecode for the package itself (pip compiles dependencies; an editable install does not,
	@# and with PYTHONDONTWRITEBYTECODE set every start would compile it again: ~80 ms)
	@$(BIN)/python -m compileall -q stageflow_assets

# Debian packages: installed with apt-get when root, otherwise one line saying what to install.
system-deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "stageflow needs Debian packages:$$missing — run: sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test]"
	$(BIN)/python -m stageflow_assets.providers.whisper_models
	touch $(STAMP)

demo: install
	$(BIN)/python -m stageflow_assets.demo demo/sample.mp4
	$(BIN)/stageflow subtitles demo/sample.mp4 --lang es --lang ca --out demo/out

test: install
	$(BIN)/pytest -q -ra

# Optional production ASR backend: whisperx (torch 2.8 CUDA build from PyPI, ~7 GB, minutes).
# Not part of install/test. Its tests: $(BIN)/pytest -m whisperx
whisperx: install
	$(BIN)/pip install -e ".[test,whisperx]"
	$(BIN)/python -c "import whisperx, torch; print('whisperx ok, torch', torch.__version__)"

ui: install
	$(BIN)/stageflow ui

bench: install
	$(BIN)/python bench/subtitles_overhead.py

clean:
	rm -rf demo .stageflow .dagster_home
