"""The Slack message of an alert: Block Kit blocks for an incoming webhook.

The message shows the topology and monitor, the kind, the score against the
threshold, an excerpt of the document, the nearest known example, and a button
linking to the call in Weave (built from a template; see
:data:`~weave_stream.notify.targets.DEFAULT_CALL_URL_TEMPLATE`). User text is
escaped for Slack's mrkdwn and cut to Slack's limits.

>>> from datetime import UTC, datetime
>>> from weave_stream.notify.alerts import Alert
>>> alert = Alert.create(
...     topology="extract", monitor="doc_drift", kind="novel_example", score=0.93,
...     threshold=0.71, call_ids=["c9"], nearest_known_call="c2", project_id="acme/extract",
...     time=datetime(2026, 11, 26, 3, 0, tzinfo=UTC), excerpt="<Factura> 7 & co",
... )
>>> payload = slack_payload(alert, "https://wandb.ai/{project_id}/weave/calls/{call_id}")
>>> payload["blocks"][0]["text"]["text"]
'Novel example in extract / doc_drift'
>>> payload["blocks"][2]["text"]["text"]
'*Document* (call `c9`)\\n>&lt;Factura&gt; 7 &amp; co'
>>> payload["blocks"][-1]["elements"][0]["url"]
'https://wandb.ai/acme/extract/weave/calls/c9'
"""

from __future__ import annotations

import string
from typing import Any

from weave_stream.notify.alerts import Alert

__all__ = ["call_link", "slack_payload"]

_TITLES = {
    "novel_example": "Novel example",
    "distribution_shift": "Distribution shift",
    "topic_shift": "Topic shift",
    "new_topic": "New topic",
}
_HEADER_LIMIT = 150
_FIELD_LIMIT = 1_900
_TEXT_LIMIT = 2_900


def call_link(alert: Alert, template: str, call_id: str | None = None) -> str | None:
    """The link to ``call_id`` (default: the alert's first call), or None if a field is unknown.

    >>> from datetime import UTC, datetime
    >>> alert = Alert.create(topology="t", monitor="m", kind="novel_example", score=1.0,
    ...                      threshold=0.5, call_ids=["c1"], time=datetime.now(UTC))
    >>> call_link(alert, "https://wandb.ai/{project_id}/weave/calls/{call_id}") is None
    True
    """
    values = {
        "call_id": call_id or alert.first_call,
        "project_id": alert.project_id or "",
        "topology": alert.topology,
        "monitor": alert.monitor,
        "alert_id": alert.id,
    }
    used = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    if any(not values.get(name) for name in used):
        return None
    return template.format(**values)


def slack_payload(alert: Alert, call_url_template: str) -> dict[str, Any]:
    """The JSON body to post to a Slack incoming webhook for ``alert``."""
    title = f"{_TITLES.get(alert.kind, alert.kind)} in {alert.topology} / {alert.monitor}"
    relation = "above" if alert.score > alert.threshold else "at or below"
    score = f"{alert.score:.4g}, {relation} the threshold {alert.threshold:.4g}"
    fields = [
        ("Topology", alert.topology),
        ("Monitor", alert.monitor),
        ("Kind", f"{alert.kind} ({alert.detector})" if alert.detector else alert.kind),
        ("Score", score),
        ("Calls", str(alert.count)),
    ]
    if alert.group:
        fields.append(("Group", ", ".join(f"{k}={v}" for k, v in alert.group.items())))
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(title, _HEADER_LIMIT)}},
        {
            "type": "section",
            "fields": [
                _mrkdwn(f"*{name}*\n{_escape(value)}", _FIELD_LIMIT) for name, value in fields
            ],
        },
    ]
    if alert.excerpt:
        text = f"*Document* (call `{_escape(alert.first_call)}`)\n>{_escape(alert.excerpt)}"
        blocks.append({"type": "section", "text": _mrkdwn(text, _TEXT_LIMIT)})
    if alert.nearest_known_call:
        blocks.append(
            {"type": "section", "text": _mrkdwn(_nearest(alert, call_url_template), _TEXT_LIMIT)}
        )
    if alert.stats:
        shown = ", ".join(f"{k}={_format(v)}" for k, v in alert.stats.items())
        blocks.append({"type": "context", "elements": [_mrkdwn(_escape(shown), _TEXT_LIMIT)]})
    context = f"alert `{alert.id}` at {alert.time.isoformat()}"
    blocks.append({"type": "context", "elements": [_mrkdwn(context, _TEXT_LIMIT)]})
    link = call_link(alert, call_url_template)
    if link:
        button = {
            "type": "button",
            "text": {"type": "plain_text", "text": "Open the call in Weave"},
            "url": link,
        }
        blocks.append({"type": "actions", "elements": [button]})
    return {"text": _cut(f"{title}: {score}", _TEXT_LIMIT), "blocks": blocks}


def _nearest(alert: Alert, template: str) -> str:
    known = alert.nearest_known_call or ""
    link = call_link(alert, template, known)
    name = f"<{link}|{_escape(known)}>" if link else f"`{_escape(known)}`"
    text = f"*Nearest known example*: {name}"
    if alert.nearest_known_excerpt:
        text += f"\n>{_escape(alert.nearest_known_excerpt)}"
    return text


def _mrkdwn(text: str, limit: int) -> dict[str, str]:
    return {"type": "mrkdwn", "text": _cut(text, limit)}


def _escape(text: str) -> str:
    # Slack's mrkdwn reserves these three; everything else passes through.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _format(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
