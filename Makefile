# Two commands do all the set-up: `make eval` and `make test` create .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

TASK    ?= needle
MODEL   ?= tiny-uniform
LIMIT   ?=
WORKERS ?=

# Offline by default: no hub, W&B writes its run locally.
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export WANDB_MODE ?= offline
export RAY_USAGE_STATS_ENABLED := 0

EVAL_ARGS := --task $(TASK) --model $(MODEL) $(if $(LIMIT),--limit $(LIMIT)) $(if $(WORKERS),--workers $(WORKERS))

.PHONY: eval test bench venv clean

# torch + torchvision are pinned exactly and installed first, so nothing later can move the stack.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

eval: $(STAMP)
	$(PY) -m harness eval $(EVAL_ARGS)

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m harness.bench

clean:
	rm -rf $(VENV)
