# Two commands do all the set-up: `make eval` and `make test` create .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

TASK    ?= needle
MODEL   ?= canary-uniform-1fps
LIMIT   ?=
WORKERS ?=
GROUP   ?=
SET     ?=  # spec overrides, e.g. SET="selector.n=64 reducer.keep_ratio=0.25"
RESUME  ?=  # a run (or suite) directory to finish

# Offline by default: no hub, W&B writes its run locally.
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export WANDB_MODE ?= offline
export RAY_USAGE_STATS_ENABLED := 0

EVAL_ARGS := --task $(TASK) --model $(MODEL) $(if $(LIMIT),--limit $(LIMIT)) $(if $(WORKERS),--workers $(WORKERS)) \
             $(if $(GROUP),--group $(GROUP)) $(if $(strip $(SET)),--set $(SET)) $(if $(strip $(RESUME)),--resume $(RESUME))

.PHONY: eval test bench venv clean lmms-venv lmms-parity extractor-report vllm-smoke needle-comparison

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

# lmms-eval (parity test, model plugin) and vLLM each need their own venv: their pins conflict with ours.
LMMS_VENV  := .venv-lmms
LMMS_STAMP := $(LMMS_VENV)/.installed
VLLM_VENV  := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed

# Its third-party half builds alongside .venv (`make -j2`, as `make test` does: each venv is minutes of
# downloading and unpacking torch); the editable install of this package waits for .venv's, since both write
# the same egg-info in this directory.
LMMS_DEPS := $(LMMS_VENV)/.deps-installed
$(LMMS_DEPS): requirements/lmms.txt
	test -x $(LMMS_VENV)/bin/python || $(PYTHON) -m venv $(LMMS_VENV)
	$(LMMS_VENV)/bin/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(LMMS_VENV)/bin/python -m pip install --quiet -r requirements/lmms.txt
	touch $(LMMS_DEPS)

$(LMMS_STAMP): $(LMMS_DEPS) $(STAMP) pyproject.toml
	$(LMMS_VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $(LMMS_STAMP)

$(VLLM_STAMP): requirements/vllm.txt pyproject.toml
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet torch==2.13.0
	$(VLLM_VENV)/bin/python -m pip install --quiet -r requirements/vllm.txt
	$(VLLM_VENV)/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $(VLLM_STAMP)

lmms-venv: $(LMMS_STAMP)

lmms-parity: $(STAMP) $(LMMS_STAMP)
	$(PY) -m pytest -q tests/interop

# How often our extractor and lmms-eval's own read each reply of tests/data/replies.json as intended, per task.
extractor-report: $(STAMP) $(LMMS_STAMP)
	$(PY) -m harness.interop.extractors --out results/extractors

VLLM_SMOKE := $(or $(HARNESS_CACHE),$(HOME)/.cache/vilamp-harness)/vllm-smoke
vllm-smoke: $(STAMP) $(VLLM_STAMP)
	$(PY) -m harness.bench.vllm_smoke prepare $(VLLM_SMOKE)
	$(VLLM_VENV)/bin/python -m harness.bench.vllm_smoke run $(VLLM_SMOKE)

test:
	$(MAKE) --no-print-directory -j2 $(STAMP) $(LMMS_STAMP)
	$(PY) -m pytest -q --durations=15

# P1 compares against the ffmpeg command line (a Debian package); install it when missing.
bench: $(STAMP) $(LMMS_STAMP)
	command -v ffmpeg >/dev/null || (apt-get update -qq && apt-get install -y -qq ffmpeg) || echo "no ffmpeg: P1 reports it unavailable"
	$(PY) -m harness.bench.speed
	$(PY) -m harness.bench.lmms_speed  # P7: ours vs lmms-eval, results/bench/lmms_speed.json
	$(PY) -m harness.bench.vilamp_scale  # results/bench/vilamp_scale.json

# The committed comparison (results/needle-comparison/): every canary spec on all 720 needle_exam questions, then
# `compare`. A run left by an interrupted comparison is resumed, not redone.
NEEDLE_SPECS := canary-uniform canary-uniform-1fps canary-uniform-vilamp-budget canary-vilamp-tf canary-topk \
                canary-aks canary-bolt canary-adardkey canary-keyclips canary-visionzip canary-tome canary-dycoke \
                canary-divprune canary-fastvid canary-flashvid canary-vidcom2 canary-fastv canary-pyramiddrop \
                canary-framefusion canary-blind
NEEDLE_RUNS  := results/.needle-comparison-runs
needle-comparison: $(STAMP)
	for m in $(NEEDLE_SPECS); do \
	  run=$$(ls -d $(NEEDLE_RUNS)/needle_exam__$${m}__* 2>/dev/null | head -1); \
	  $(PY) -m harness eval --task needle_exam --model $$m --workers 2 --group needle-comparison --out $(NEEDLE_RUNS) \
	    $${run:+--resume $$run} || exit 1; \
	done
	$(PY) -m harness compare $(NEEDLE_RUNS)/needle_exam__* --out results/needle-comparison \
	  --title "needle_exam: what each method feeds a trained canary, and what it answers"

# The canaries (issue 13): the LLaVA-OV and the CLIP, trained here on the needle task's renderer, written over the
# shipped checkpoints.
CANARY_DIR := harness/canary/weights
.PHONY: canary
canary: $(STAMP)
	$(PY) -m harness.canary train --out $(CANARY_DIR)/llava-ov
	$(PY) -m harness.canary train-clip --out $(CANARY_DIR)/clip

clean:
	rm -rf $(VENV) $(LMMS_VENV) $(VLLM_VENV)
