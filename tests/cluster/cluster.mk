# Real Kubernetes test control plane (etcd 3.6 embedded, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl v1.34.x); see docs/testing.md.
# Included by the main Makefile, which defines VENV_PY.
VENV_PY ?= .venv/bin/python
CLUSTER_PY := tests/cluster/cluster.py

.PHONY: cluster-up cluster-down cluster-build cluster-status cluster-purge

cluster-build: ## build (or reuse the cached) control-plane binary
	$(VENV_PY) $(CLUSTER_PY) build

cluster-up: ## start the test control plane (idempotent); prints export KUBECONFIG=...
	$(VENV_PY) $(CLUSTER_PY) up

cluster-down: ## stop every control-plane process
	$(VENV_PY) $(CLUSTER_PY) down

cluster-status:
	$(VENV_PY) $(CLUSTER_PY) status

cluster-purge: ## stop and delete tests/cluster/.state
	$(VENV_PY) $(CLUSTER_PY) down --purge
