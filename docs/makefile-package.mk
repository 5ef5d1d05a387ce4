# --- Deployment targets (merge into the Makefile) -------------------------------------------
PYTHON ?= .venv/bin/python

.PHONY: package iac-check

## package: build dist/<function>.zip (main.py + shared/ + requirements.txt), reproducibly
package:
	$(PYTHON) scripts/package.py --out dist

## iac-check: offline Terraform checks (parse + policy, checkov, hclfmt) and bundle tests
iac-check:
	$(PYTHON) -m pytest -q tests/deploy
