# Fault-injection suite (tests/faults): a few thousand messages through real Redis and RabbitMQ
# while the worker and bridge are SIGKILLed and the servers restart. It restarts the shared Redis
# and RabbitMQ on 127.0.0.1, so it is not part of `make test`; CI (.ci/run) calls it after.
# Writes docs/faults.md. Sizes: FAULTS_MESSAGES, FAULTS_USERS, FAULTS_SEND_SECONDS.
.PHONY: test-faults
test-faults: $(VENV)/.dev
	$(PY) -m pytest -q -s -m faults -o addopts="" --timeout=600 tests/faults
