# The README's two commands are `make run` and `make test`; the rest are helpers.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
TOOLS ?= .tools

.PHONY: run dev check-config test test-faults lint typecheck unit integration openapi bridge package iac-check bench bench-smoke bench-profile loadtest clean

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

run: $(VENV)/.runtime ## serve the whole API on $(PORT) (embedded backends unless REDIS_URL/RABBITMQ_URL are set)
	PORT=$(PORT) $(PY) -m shared.localstack

$(TOOLS)/checkov/.installed: requirements-iac.txt
	test -x $(TOOLS)/checkov/bin/python || $(PYTHON) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-iac.txt
	touch $@

dev: $(VENV)/.runtime ## the local stack on $(PORT), restarted when a file under shared/ or functions/ changes
	PORT=$(PORT) $(PY) -m shared.localstack --reload

check-config: $(VENV)/.runtime ## validate every setting and reach each configured dependency (exit 1 on a critical failure)
	$(PY) -m shared.localstack --check

test: $(VENV)/.dev $(VENV)/.bench $(TOOLS)/checkov/.installed lint typecheck ## lint, types, every test (Redis + RabbitMQ on 127.0.0.1)
	$(PY) -m pytest -q

test-faults: $(VENV)/.dev ## fault injection: restarts Redis/RabbitMQ, kills bridge and worker; writes docs/faults.md
	$(PY) -m pytest -q -s -m faults -o addopts="" --timeout=600 tests/faults

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.dev
	$(VENV)/bin/mypy shared functions tests bench

unit: $(VENV)/.dev
	$(PY) -m pytest -q tests/unit

integration: $(VENV)/.dev
	$(PY) -m pytest -q -m integration

openapi: $(VENV)/.runtime ## regenerate the checked-in OpenAPI document and configuration reference
	$(PY) -m shared.openapi > openapi.json
	$(PY) -m shared.config > docs/configuration.md

bridge: $(VENV)/.runtime ## run the queue bridge alone (RABBITMQ_URL, REDIS_URL, WORKER_URL)
	$(PY) -m shared.bridge

package: $(VENV)/.runtime ## build dist/<function>.zip (main.py + shared/ + requirements.txt), reproducibly
	$(PY) scripts/package.py --out dist

iac-check: $(VENV)/.dev $(TOOLS)/checkov/.installed ## offline Terraform checks and bundle tests
	$(PY) -m pytest -q tests/deploy

$(VENV)/.bench: $(VENV)/.dev requirements-bench.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-bench.txt
	command -v wrk >/dev/null || echo "wrk not found: max-throughput runs fall back to the Python generator (apt-get install -y wrk)"
	touch $@

bench: $(VENV)/.bench ## full benchmark (~10 min; needs Redis and RabbitMQ on 127.0.0.1): table, bench/results/*.json, docs/bench/*.png
	$(PY) -m bench

bench-smoke: $(VENV)/.bench ## the same harness for a few seconds per section (what CI runs)
	$(PY) -m bench --smoke --out build/bench --plots build/bench

bench-profile: $(VENV)/.bench ## py-spy profile of the webhook under load -> docs/bench/webhook-profile.*
	$(PY) -m bench.profile

loadtest: $(VENV)/.bench ## locust k6-style scenario against BASE_URL (default the local stack on $(PORT))
	$(VENV)/bin/locust -f loadtest/locustfile.py --headless -u $${USERS:-20} -r $${SPAWN_RATE:-5} \
		-t $${DURATION:-2m} --host $${BASE_URL:-http://127.0.0.1:$(PORT)} --html build/loadtest-report.html

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache dist
