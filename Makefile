# invsync: every setup step lives here, so a fresh machine needs only `make run` or `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
INVSYNC_STATE_DIR ?= .invsync
INSTALLER ?= kustomize

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test]'
	touch $@

.PHONY: venv
venv: $(STAMP) ## create .venv with invsync and its test tools

.PHONY: control-plane
control-plane: ## build etcd, kube-apiserver and kubectl once (cached in ~/.cache/invsync)
	hack/build-control-plane.sh

.PHONY: helm
helm: ## build helm once from its pinned module (cached in ~/.cache/invsync)
	hack/build-helm.sh

.PHONY: cluster-up
cluster-up: $(STAMP) ## start the local control plane in the background (KUBECONFIG=.invsync/kubeconfig)
	INVSYNC_BIN_DIR=$${INVSYNC_BIN_DIR:-$$(hack/build-control-plane.sh)} \
	  $(PY) -m invsync.testing.cluster up --state-dir $(INVSYNC_STATE_DIR)

.PHONY: cluster-down
cluster-down: $(STAMP) ## stop the local control plane and delete its data
	$(PY) -m invsync.testing.cluster down --state-dir $(INVSYNC_STATE_DIR)

.PHONY: run
run: $(STAMP) ## the demo: local control plane, sandbox, examples/ applied, the operator in the foreground
	hack/run.sh

.PHONY: prometheus
prometheus: ## install prometheus and promtool from the system's packages (alert tests need them)
	@if command -v prometheus >/dev/null && command -v promtool >/dev/null; then \
	  echo "prometheus: $$(command -v prometheus), promtool: $$(command -v promtool)"; \
	else \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus; \
	fi

NODE_PACKAGES := containerd runc containernetworking-plugins iptables conntrack mmdebstrap
.PHONY: node-packages
node-packages: ## install containerd, runc, the CNI plugins and mmdebstrap from the system's packages (make deploy needs them)
	@if command -v containerd >/dev/null && command -v runc >/dev/null && command -v mmdebstrap >/dev/null \
	    && [ -x /usr/lib/cni/bridge ] && command -v iptables >/dev/null && command -v conntrack >/dev/null; then \
	  echo "node packages: installed ($(NODE_PACKAGES))"; \
	else \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(NODE_PACKAGES); \
	fi

.PHONY: node
node: ## build the local node's kubelet, kube-proxy, controller-manager, scheduler, CoreDNS once (cached)
	hack/build-control-plane.sh --node

.PHONY: deploy
deploy: $(STAMP) node node-packages $(if $(filter helm,$(INSTALLER)),helm) ## the local cluster with a real node, the image, manifests/overlays/local (INSTALLER=helm: the chart's release); waits until every SyncRule is Ready
	$(if $(filter helm,$(INSTALLER)),INVSYNC_HELM=$$(hack/build-helm.sh)) \
	  $(PY) -m invsync.testing.deploy up --installer $(INSTALLER) --state-dir $(INVSYNC_STATE_DIR)

.PHONY: deploy-down
deploy-down: $(STAMP) ## remove make deploy's cluster, node, pods, iptables chains, mounts and containerd state
	$(PY) -m invsync.testing.deploy down --state-dir $(INVSYNC_STATE_DIR)

.PHONY: crds
crds: $(STAMP) ## regenerate crds/ from the pydantic models
	$(PY) -m invsync.api.crdgen crds manifests/crds charts/invsync/crds

.PHONY: manifests
manifests: $(STAMP) ## regenerate manifests/monitoring/prometheusrule.yaml from the alert rules
	$(PY) hack/prometheusrule.py

.PHONY: lint
lint: $(STAMP) ## ruff and mypy
	$(VENV)/bin/ruff check controller tests bench
	$(VENV)/bin/ruff format --check controller tests bench
	$(VENV)/bin/mypy

BENCH_OUT := bench/out
BENCHES := plan platforms convergence latency steady read memory snapshot shopee lazada shopify_bulk one_rule
# `make bench BENCH_QUICK=1`: every benchmark at a small size, a check that they run (no figures to quote)
ifdef BENCH_QUICK
BENCH_ARGS_plan := --slots 10000 100000 --runs 1
BENCH_ARGS_platforms := --products 2000 --pushes 200
BENCH_ARGS_convergence := --products 500 --runs 1
BENCH_ARGS_latency := --changes 50 --runs 1
BENCH_ARGS_steady := --rules 10 --listings 1000 --resyncs 2
BENCH_ARGS_snapshot := --stores 2 --products 2000
BENCH_ARGS_shopee := --items 500 --pushes 50
BENCH_ARGS_shopify_bulk := --levels 20000
BENCH_ARGS_lazada := --products 500
BENCH_ARGS_read := --listings 30000
BENCH_ARGS_memory := --listings 100000
BENCH_ARGS_one_rule := --products 5000 --changed 50 --rps 100
endif

.PHONY: bench
bench: $(STAMP) control-plane ## benchmarks against the platforms' limits; BENCHMARKS.md-ready tables in bench/out/
	@mkdir -p $(BENCH_OUT)
	$(foreach b,$(BENCHES),INVSYNC_BIN_DIR=$$(hack/build-control-plane.sh) \
	  $(PY) bench/bench_$(b).py $(BENCH_ARGS_$(b)) --markdown $(BENCH_OUT)/$(b).md &&) true
	$(if $(BENCH_QUICK),,INVSYNC_BIN_DIR=$$(hack/build-control-plane.sh) \
	  $(PY) bench/bench_steady.py --listings 1000000 --resyncs 2 --markdown $(BENCH_OUT)/steady-1m.md)
	cat $(foreach b,$(BENCHES),$(BENCH_OUT)/$(b).md) $(if $(BENCH_QUICK),,$(BENCH_OUT)/steady-1m.md) \
	  > $(BENCH_OUT)/tables.md
	@echo "tables: $(BENCH_OUT)/tables.md"

.PHONY: soak
soak: $(STAMP) control-plane ## SOAK_MINUTES (default 30) of random changes, faults, rule edits; then slots = plan, counters = request log
	INVSYNC_BIN_DIR=$$(hack/build-control-plane.sh) $(PY) hack/soak.py --minutes $${SOAK_MINUTES:-30}

.PHONY: test
test: $(STAMP) control-plane node node-packages helm prometheus lint ## everything: lint, helm lint, unit, contract, end-to-end and deploy tests
	INVSYNC_BIN_DIR=$$(hack/build-control-plane.sh) INVSYNC_HELM=$$(hack/build-helm.sh) $(PY) -m pytest -q $(PYTEST_ARGS)
