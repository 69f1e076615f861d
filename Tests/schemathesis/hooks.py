"""Schemathesis checks of Cofre's own (loaded with SCHEMATHESIS_HOOKS).

`no_echoed_value`: a response never repeats a value the caller submitted where a personal value
goes (a field's value, a lookup or tokenize value, consent evidence, an erasure reason or ticket,
an external reference). Errors must not quote any of them; successes may only where the interface
says they do (a consent event shows its own evidence and channel, an erasure receipt its reason
and ticket, a batch result its external reference), and never a field's value.
"""
import json

import schemathesis

# Keys whose string values are personal data or free text that must not come back in an answer.
VALUE_KEYS = {"value", "evidence", "reason", "ticket", "external_ref", "channel", "notice_version"}
# What a successful answer legitimately shows back, by path suffix.
ECHO_ALLOWED_ON_SUCCESS = {
    "consents": {"evidence", "channel", "notice_version"},
    "objections": {"evidence", "channel", "notice_version"},
    "erase": {"reason", "ticket"},
    "batch": {"external_ref"},
}
MIN_LENGTH = 4  # shorter strings occur in any JSON by chance


def submitted(body, key=None, out=None):
    """(key, value) for every string in a value position of the request body."""
    if out is None:
        out = []
    if isinstance(body, dict):
        for k, v in body.items():
            if k == "fields" and isinstance(v, dict):
                for fv in v.values():
                    if isinstance(fv, str):
                        out.append(("fields", fv))
            else:
                submitted(v, k, out)
    elif isinstance(body, list):
        for v in body:
            submitted(v, key, out)
    elif isinstance(body, str) and key in VALUE_KEYS:
        out.append((key, body))
    return out


@schemathesis.check
def no_echoed_value(ctx, response, case):
    body = case.body if isinstance(case.body, (dict, list)) else None
    if body is None or not response.content:
        return None
    text = response.content.decode("utf-8", "replace")
    try:
        decoded = json.dumps(json.loads(text), ensure_ascii=False)
    except ValueError:
        decoded = text
    success = 200 <= response.status_code < 300
    last = case.path.rstrip("/").split("/")[-1] if case.path else ""
    if "{purpose}" in case.path:
        last = case.path.split("/")[-2]
    allowed = ECHO_ALLOWED_ON_SUCCESS.get(last, set()) if success else set()
    for key, value in submitted(body):
        v = value.strip()
        if len(v) < MIN_LENGTH or key in allowed:
            continue
        if v in text or v in decoded:
            raise AssertionError(f"the answer ({response.status_code}) repeats the submitted {key!r}")
    return None
