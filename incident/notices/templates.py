"""One sandboxed Jinja environment: workspace templates override the packaged ones, nothing undefined passes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined, TemplateError, TemplateNotFound, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup, escape

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
    """Render one template; any template problem becomes a one-line IncidentError."""
    try:
        return env.get_template(name).render(context).strip()
    except (TemplateError, OverflowError) as exc:  # OverflowError: the sandbox refusing a huge range()
        raise template_error(exc) from None
