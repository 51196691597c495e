"""Schemathesis hooks for .ci/schemathesis.sh: the check every Switchboard error answer must pass."""

import json

import schemathesis


@schemathesis.check
def error_body_is_code_message(ctx, response, case):
    """Every answer of 400 or more is a JSON object {code, message} of two strings (docs/errors.md)."""
    if response.status_code < 400:
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"the {response.status_code} answer is not JSON: {response.content[:200]!r}")
    if not isinstance(body, dict) or not isinstance(body.get("code"), str) or not isinstance(body.get("message"), str):
        raise AssertionError(f"the {response.status_code} answer is not {{code, message}}: {body!r}")
    return None
