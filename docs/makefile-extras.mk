# Targets for the main Makefile (merge below `run`; add check-config and dev to .PHONY).

check-config: $(VENV)/.runtime ## validate every setting and reach each configured dependency (exit 1 on a critical failure)
	$(PY) -m shared.localstack --check

dev: $(VENV)/.runtime ## the local stack on $(PORT), restarted when a file under shared/ or functions/ changes
	PORT=$(PORT) $(PY) -m shared.localstack --reload
