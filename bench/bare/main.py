"""A bare functions-framework function: the baseline the webhook is compared with."""

import flask
import functions_framework

_BODY = '{"status":"ok","message_id":"00000000-0000-0000-0000-000000000000"}'


@functions_framework.http
def bare(request: flask.Request) -> flask.Response:
    return flask.Response(_BODY, status=200, mimetype="application/json")
