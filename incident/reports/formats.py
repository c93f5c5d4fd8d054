"""A report's Markdown turned into an HTML page and a PDF (WeasyPrint, with a CJK font for Chinese)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from markupsafe import Markup

from incident.notices import templates
from incident.notices.template_files import packaged_dir

PAGE = "reports/page.html.j2"


def markdown_to_html(text: str) -> str:
    """CommonMark (with tables) to HTML, raw HTML shown as text and unsafe link schemes refused: responder text
    never becomes markup."""
    from markdown_it import MarkdownIt

    return str(MarkdownIt("commonmark", {"html": False}).enable("table").render(text))


def html_page(env: Any, title: str, lang: str, markdown_text: str) -> str:
    """The report as a standalone HTML page (the page template sets the CJK font family)."""
    body = Markup(markdown_to_html(markdown_text))  # raw HTML was escaped by markdown_to_html
    return templates.render(env, PAGE, {"title": title, "lang": lang, "body": body})


def packaged_asset(url: str) -> Path | None:
    """The file a URL names when it is one of the packaged assets (under the shipped notices/ folder), else None."""
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        return None
    path = Path(unquote(parts.path)).resolve()
    root = packaged_dir().resolve()
    return path if path.is_relative_to(root) and path.is_file() else None


def pdf(html: str) -> bytes:
    """Print the HTML page to PDF with WeasyPrint (fonts come from fontconfig, e.g. Noto Sans CJK SC). WeasyPrint
    may fetch only the packaged assets: an image or stylesheet anywhere else is a request made on the responder's
    machine to a URL someone else chose (SSRF), so it is refused and left out of the page."""
    import logging

    import weasyprint

    def refuse(url: str) -> None:
        if packaged_asset(url) is None:
            raise ValueError(f"refused {url.split(':', 1)[0]}: resource outside the packaged assets")

    fetcher: Any
    if hasattr(weasyprint, "URLFetcher"):  # recent WeasyPrint: a fetcher is a URLFetcher

        class PackagedAssetsOnly(weasyprint.URLFetcher):
            def fetch(self, url: str, headers: Any = None) -> Any:
                refuse(url)
                return super().fetch(url, headers)

        fetcher = PackagedAssetsOnly()
    else:  # older WeasyPrint: a function in default_url_fetcher's shape

        def fetcher(url: str, *args: Any, **kwargs: Any) -> Any:
            refuse(url)
            return weasyprint.default_url_fetcher(url, *args, **kwargs)

    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    return bytes(weasyprint.HTML(string=html, url_fetcher=fetcher).write_pdf())
