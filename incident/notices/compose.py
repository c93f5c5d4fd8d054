"""What one person's notices say: their channels, variant, each channel's rendered text and its hash."""

from __future__ import annotations

import weakref
from datetime import datetime
from typing import Any

from jinja2 import TemplateError

from incident.notices import content, lint, templates

LETTER = "letter"


def channels_for(person: dict[str, Any], allowed: list[str]) -> list[str]:
    """The channels this person (or their guardian) can receive, in fallback order, letter last."""
    have = {"email": person["to_email"], "sms": person["to_phone"], "push": person["to_push"]}
    out = [c for c in allowed if have[c]]
    if person["to_address"]:
        out.append(LETTER)
    return out


def variant_key(locale: str, channel: str, audience: str, categories: str) -> str:
    return f"{locale}|{channel}|{audience}|{categories}"


_compiled: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def _render(env: Any, name: str, ctx: dict[str, Any]) -> str:
    """templates.render, with each environment's compiled templates kept at hand: a notice renders about a dozen
    templates and Jinja's own cache lookup (an LRU under a lock) costs a few microseconds each time."""
    known = _compiled.setdefault(env, {})
    try:
        template = known.get(name)
        if template is None:
            template = known[name] = env.get_template(name)
        return str(template.render(ctx)).strip()
    except (TemplateError, OverflowError) as exc:  # exactly as templates.render reports them
        raise templates.template_error(exc) from None


def render_person(
    env: Any, static: dict[str, Any], person: dict[str, Any], today: datetime
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Render one person's partials once, then every channel they can receive from them (dated `today`)."""
    loc = person["locale"]
    ctx = content.person_context(static, person, person["ref"], today)
    parts = {name: _render(env, f"{loc}/partials/{name}.txt.j2", ctx) for name in lint.ELEMENTS}
    ctx["parts"] = parts
    subject = _render(env, f"{loc}/subject.txt.j2", ctx)
    ctx["subject"] = subject
    out = []
    for channel in channels_for(person, static["channels"]):
        html = None
        if channel == "email":
            body = _render(env, f"{loc}/email.txt.j2", ctx)
            html = _render(env, f"{loc}/email.html.j2", ctx)
            subj, name = subject, f"{loc}/email"
        elif channel == LETTER:
            html = _render(env, f"{loc}/letter.html.j2", ctx)
            body = "\n\n".join(parts[n] for n in lint.ELEMENTS)
            subj, name = subject, f"{loc}/letter.html.j2"
        elif channel == "push":
            title, _, body = _render(env, f"{loc}/push.txt.j2", ctx).partition("\n")
            subj, body, name = title.strip(), body.strip(), f"{loc}/push.txt.j2"
        else:
            subj, body, name = "", _render(env, f"{loc}/sms.txt.j2", ctx), f"{loc}/sms.txt.j2"
        out.append({"channel": channel, "template": name, "subject": subj, "body": body, "html": html})
    return parts, out
