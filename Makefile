# The two commands a newcomer needs: `make run` (set up and run the main job) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TOOLS_BIN := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/datajax-operator/bin
export PATH := $(CURDIR)/$(VENV)/bin:$(TOOLS_BIN):$(PATH)

.PHONY: install tools tpu-env lint test test-unit run crd docs cluster bench bench-autoscale clean

# A stamp so `make install` is a no-op until a pyproject.toml changes. Three distributions, one per image
# plus the development tools: the operator (.), the runtime (runtime_image/), devtools (devtools/).
$(VENV)/.installed: pyproject.toml runtime_image/pyproject.toml devtools/pyproject.toml
	@echo "==> creating $(VENV) and installing datajax-operator, datajax-runtime, datajax-devtools (dev)"
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@# Second, so that a venv upgraded from the one-distribution layout keeps the sidecar script.
	$(PY) -m pip install --quiet -e ./runtime_image -e ./devtools
	touch $@

install: $(VENV)/.installed

## Build (once) and cache the control plane (etcd, kube-apiserver, kube-scheduler, kube-controller-manager,
## kwok), kubectl, helm and promtool outside the repository.
tools:
	@echo "==> tools: etcd, kube-apiserver, kubectl, kube-scheduler, kube-controller-manager, kwok, helm, promtool (built once into $(TOOLS_BIN))"
	@bash tools/build-tools.sh

## Create (once) and cache the real vLLM TPU stack (vllm-tpu, tpu-inference, JAX, libtpu; ~11 GB) outside
## the repository, for the tpu_stack tests and `validate-mesh --target tpu`. Pins: tools/versions.env.
tpu-env:
	@echo "==> tpu-env: vllm-tpu $$(. tools/versions.env && echo $$VLLM_TPU_VERSION) (created once under $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/datajax-operator/tpu-env)"
	@bash tools/tpu-env.sh > /dev/null

## A real control plane in the foreground for kubectl/helm, with kwok's GKE-shaped TPU node pools
## (`kubectl get nodes -L cloud.google.com/gke-tpu-topology`): writes .cluster/kubeconfig, Ctrl-C stops it.
cluster: install tools
	$(PY) -m datajax_devtools.localcluster --kubeconfig .cluster/kubeconfig --crd crds --crd tests/crds

lint: install
	@echo "==> ruff"
	$(VENV)/bin/ruff check operator runtime_image devtools tests tools
	$(VENV)/bin/ruff format --check operator runtime_image devtools tests tools
	@echo "==> mypy"
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict tools
	@echo "==> import-linter (layers of DESIGN §2)"
	$(VENV)/bin/lint-imports

## Everything CI runs: tools, lint, and every test tier. Cold, the Go tools (CPU-bound) and the TPU stack
## (mostly download and unpack) are built side by side.
test: install
	@$(MAKE) --no-print-directory -j2 tools tpu-env
	@$(MAKE) --no-print-directory lint
	@echo "==> pytest"
	$(PY) -m pytest

test-unit: install
	$(PY) -m pytest tests/unit

## The main job, the local demo: a real control plane, the operator and its sidecars serve the Llama 3.1 8B
## example under simulated vLLM traffic, through a cost-ceiling breach and back (a few minutes; Ctrl-C stops it).
run: install
	@bash tools/build-tools.sh etcd kube-apiserver kubectl kube-scheduler kube-controller-manager kwok
	$(PY) -m datajax_devtools.demo --model examples/llama3-8b-v6e.yaml

## Benchmarks against a local control plane (not part of `make test`; ~10 minutes on 2 cores):
## Markdown tables on stdout, the JSON in bench/results/. See docs/benchmarks.md.
bench: install tools
	$(PY) tests/bench/run_bench.py

## The autoscaling comparison (not part of `make test`; ~10 minutes of one core): a trace-driven fleet
## simulator, spec.scaling vs an HPA on vllm:num_requests_waiting vs fixed replicas. See docs/benchmarks.md.
bench-autoscale: install
	$(PY) tests/bench/run_fleet_sim.py

## Regenerate every file derived from the typed API and the TPU catalog: the CRD, its copy in the chart, the API
## reference, the runtime's copy of the catalog, the chart's default prices and the chart's values schema for
## `config` (from OperatorConfig).
crd: install
	$(VENV)/bin/datajax-operator crd > crds/datajaxmodels.datajax.dev.yaml
	cp crds/datajaxmodels.datajax.dev.yaml charts/datajax-operator/crds/
	$(VENV)/bin/datajax-operator crd --reference > docs/crd-reference.md
	$(PY) tools/sync_tpu_catalog.py
	$(PY) tools/values_schema.py

docs: crd

clean:
	rm -rf $(VENV) .cluster .pytest_cache .mypy_cache .ruff_cache
