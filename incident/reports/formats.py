"""A report's Markdown turned into an HTML page and a PDF (WeasyPrint, with a CJK font for Chinese)."""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from incident.notices import templates

PAGE = "reports/page.html.j2"


def markdown_to_html(text: str) -> str:
    """Markdown to HTML with raw HTML shown as text: responder text never becomes markup."""
    import markdown

    md = markdown.Markdown(extensions=["tables", "sane_lists"])
    md.preprocessors.deregister("html_block")
    md.inlinePatterns.deregister("html")
    return md.convert(text)


def html_page(env: Any, title: str, lang: str, markdown_text: str) -> str:
    """The report as a standalone HTML page (the page template sets the CJK font family)."""
    body = Markup(markdown_to_html(markdown_text))  # raw HTML was escaped by markdown_to_html
    return templates.render(env, PAGE, {"title": title, "lang": lang, "body": body})


def pdf(html: str) -> bytes:
    """Print the HTML page to PDF with WeasyPrint (fonts come from fontconfig, e.g. Noto Sans CJK SC)."""
    import logging

    import weasyprint

    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    return bytes(weasyprint.HTML(string=html).write_pdf())
