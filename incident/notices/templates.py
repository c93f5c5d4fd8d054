"""One sandboxed Jinja environment: workspace templates override the packaged ones, nothing undefined passes, and
in a Markdown template (*.md.j2) every value is Markdown-escaped, as HTML templates autoescape."""

from __future__ import annotations

import re
import sys
import weakref
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
    TemplateRuntimeError,
    TemplateSyntaxError,
    pass_context,
)
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup, escape

from incident import zones
from incident.errors import IncidentError
from incident.notices.template_files import packaged_dir


def blocks(text: str) -> Markup:
    """Turn partial text into HTML: blank lines separate paragraphs, '- ' lines are list items; all escaped."""
    html: list[str] = []
    for chunk in str(text).strip().split("\n\n"):
        lines = [line for line in chunk.split("\n") if line.strip()]
        if not lines:
            continue
        if all(line.startswith("- ") for line in lines):
            items = "".join(f"<li>{escape(line[2:])}</li>" for line in lines)
            if html and html[-1].endswith("</ul>"):
                html[-1] = html[-1][: -len("</ul>")] + items + "</ul>"
            else:
                html.append(f"<ul>{items}</ul>")
        else:
            html.append("<p>" + "<br>".join(str(escape(line)) for line in lines) + "</p>")
    return Markup("\n".join(html))


class MarkdownSafe(str):
    """Text that is already Markdown (escaped responder text, or a list the code built): a .md.j2 keeps it."""


# CommonMark reads these anywhere in a line: emphasis, code, links and images, raw HTML, tables, entities.
_MD_INLINE = re.compile(r"([\\`*_\[\]<>|~&])")
# And these at the start of a line: headings, setext underlines, list items, thematic breaks.
_MD_LINE_START = re.compile(r"^([#=+-])|^(\d{1,9})([.)])")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})", re.M)


def markdown_escape(text: object) -> MarkdownSafe:
    """Responder text for a Markdown document: shown as typed, never a link, image, heading, table row or HTML.
    Its lines stay lines (hard breaks) inside the block the template put them in."""
    if isinstance(text, MarkdownSafe):
        return text
    lines = []
    for line in str(text).splitlines():
        line = _MD_INLINE.sub(r"\\\1", line.strip())  # stripped: four spaces would start a code block
        lines.append(_MD_LINE_START.sub(lambda m: f"\\{m[1]}" if m[1] else f"{m[2]}\\{m[3]}", line))
    return MarkdownSafe("  \n".join(line for line in lines if line))


def markdown_code(text: str) -> MarkdownSafe:
    """Text for inside a fenced code block: shown as it is, except that no line can close the fence."""
    return MarkdownSafe(_FENCE.sub(lambda m: "    " + m[1], str(text)))


def _markdown_value(value: Any) -> Any:
    # finalize of the Markdown twin: every {{ }} of a .md.j2 template passes here, as autoescape does for HTML
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return markdown_escape(value)


_MARKDOWN_TWINS: weakref.WeakKeyDictionary[Any, ImmutableSandboxedEnvironment] = weakref.WeakKeyDictionary()


def markdown_twin(env: ImmutableSandboxedEnvironment) -> ImmutableSandboxedEnvironment:
    """The same environment (loader, sandbox, filters) with every value Markdown-escaped."""
    twin = _MARKDOWN_TWINS.get(env)
    if twin is None:
        # a cache of its own: a template compiled without the escaping must never be reused here
        twin = env.overlay(finalize=_markdown_value, cache_size=64)
        _MARKDOWN_TWINS[env] = twin
    return twin


def _clock(ctx: Context, value: Any, locale: str | None, zone: str | None) -> tuple[Any, str, str]:
    """The instant, zone and locale a date filter writes in: the template's own `zone` and `locale` unless named."""
    if value is None or value == "":
        raise TemplateRuntimeError("a date filter was given no date")
    zone, locale = zone or ctx.get("zone"), locale or ctx.get("locale")
    if not zone or not locale:
        raise TemplateRuntimeError("a date filter needs the reader's `zone` and `locale` (give them as arguments)")
    try:
        zones.known_zone(zone)
    except IncidentError as exc:
        raise TemplateRuntimeError(str(exc)) from None
    return value, zone, locale


@pass_context
def day_filter(ctx: Context, value: Any, locale: str | None = None, zone: str | None = None) -> str:
    """`{{ when | day }}`: the calendar day on the reader's clock, the zone named (the one place dates are written)."""
    try:
        return zones.format_day(*_clock(ctx, value, locale, zone))
    except ValueError:
        raise TemplateRuntimeError(f"not a date: {str(value)[:40]!r}") from None


@pass_context
def moment_filter(ctx: Context, value: Any, locale: str | None = None, zone: str | None = None) -> str:
    """`{{ when | moment }}`: date and time on the reader's clock, the zone named."""
    try:
        return zones.format_moment(*_clock(ctx, value, locale, zone))
    except ValueError:
        raise TemplateRuntimeError(f"not a date: {str(value)[:40]!r}") from None


def environment(workspace: Path | None) -> ImmutableSandboxedEnvironment:
    """Build the sandboxed environment for a workspace (its notices/ folder wins over the packaged one)."""
    loaders = []
    if workspace is not None and (workspace / "notices").is_dir():
        loaders.append(FileSystemLoader(workspace / "notices"))
    loaders.append(FileSystemLoader(packaged_dir()))
    env = ImmutableSandboxedEnvironment(
        loader=ChoiceLoader(loaders),
        undefined=StrictUndefined,
        autoescape=lambda name: bool(name and name.endswith(".html.j2")),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=False,
    )
    env.filters["blocks"] = blocks
    env.filters["day"] = day_filter
    env.filters["moment"] = moment_filter
    return env


def template_error(exc: Exception) -> IncidentError:
    """Turn a Jinja error into one line naming the template file and line."""
    if isinstance(exc, TemplateSyntaxError):
        return IncidentError(f"{exc.filename or exc.name}:{exc.lineno}: template syntax error: {exc.message}")
    tb = sys.exc_info()[2] if sys.exc_info()[1] is exc else exc.__traceback__
    where = None
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if name.endswith(".j2"):
            where = f"{name}:{tb.tb_lineno}"
        tb = tb.tb_next
    message = exc.message if isinstance(exc, TemplateError) and exc.message else str(exc)
    if isinstance(exc, TemplateNotFound):
        message = f"no template {message!r} in the workspace's or the packaged notices/ folder"
    return IncidentError(f"{where or 'template'}: template error: {message}")


def render(env: ImmutableSandboxedEnvironment, name: str, context: dict[str, Any]) -> str:
    """Render one template (a .md.j2 one with every value Markdown-escaped); any template problem becomes a
    one-line IncidentError."""
    if name.endswith(".md.j2"):
        env = markdown_twin(env)
    try:
        return env.get_template(name).render(context).strip()
    except (TemplateError, OverflowError) as exc:  # OverflowError: the sandbox refusing a huge range()
        raise template_error(exc) from None
