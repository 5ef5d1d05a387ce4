# --- benchmark and load test (merge into the Makefile; `make bench` reports, it never fails on speed) ---
.PHONY: bench bench-smoke bench-profile loadtest

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
