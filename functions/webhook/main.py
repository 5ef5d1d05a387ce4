"""Webhook function: accepts WhatsApp user messages and queues them (``shared.intake``)."""

import flask
import functions_framework

from shared.startup import loading

with loading():  # no garbage collections while the function loads (shared.startup)
    from shared.api import webhook_router
    from shared.auth import require_credentials
    from shared.observability import setup_process
    from shared.runtime import get_runtime

    # Fail at start, naming the variable, when a setting is invalid or credentials are missing.
    require_credentials(get_runtime().auth, get_runtime().settings)
    setup_process(get_runtime().settings)  # JSON logs for Cloud Logging; tracing when configured
    _router = webhook_router()


@functions_framework.http
def webhook(request: flask.Request) -> flask.Response:
    return _router.dispatch(request)
