"""Poll function: results, task status, last activity, health, metrics (``shared.polling``)."""

import flask
import functions_framework

from shared.api import poll_router
from shared.runtime import get_runtime

get_runtime()  # fail at start, naming the variable, when a setting is invalid
_router = poll_router()


@functions_framework.http
def poll(request: flask.Request) -> flask.Response:
    return _router.dispatch(request)
