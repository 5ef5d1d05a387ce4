"""Worker function: runs the pipeline for one message pushed by the bridge or Pub/Sub (``shared.worker``)."""

import flask
import functions_framework

from shared.startup import loading

with loading():  # no garbage collections while the function loads (shared.startup)
    from shared.api import worker_router
    from shared.observability import setup_process
    from shared.runtime import get_runtime

    get_runtime()  # fail at start, naming the variable, when a setting is invalid
    setup_process(get_runtime().settings)  # JSON logs for Cloud Logging; tracing when configured
    _router = worker_router()


@functions_framework.http
def worker(request: flask.Request) -> flask.Response:
    return _router.dispatch(request)
