"""Issue 12, item 5: responder text (summary, --connected, --field, --delay-reason, logged actions) and the
inventory's system descriptions are data in every Markdown document: no live link, image, script, heading or
table row in the HTML reports or the public announcement, and WeasyPrint fetches nothing while making a PDF.

A real HTTP server on 127.0.0.1 counts the requests an image or stylesheet would make.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from support import SYSTEMS_YAML, WorkspaceDir, open_incident

OWN_SITE = "https://www.lkkjjt.com/"  # the lookup page the announcement links to (incident.toml)
PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


@dataclass
class CountingServer:
    """An HTTP server that answers every GET with a 1x1 PNG and counts the requests."""

    port: int = 0
    paths: list[str] = field(default_factory=list)


@pytest.fixture
def pixel_server() -> Iterator[CountingServer]:
    counted = CountingServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            counted.paths.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png" if self.path.endswith(".png") else "text/css")
            self.send_header("Content-Length", str(len(PIXEL)))
            self.end_headers()
            self.wfile.write(PIXEL)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    counted.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield counted
    server.shutdown()
    server.server_close()


def injection(port: int, where: str) -> str:
    """Markdown and HTML a responder might paste (or an attacker's note they quote), tagged with where it went."""
    return (
        f"{where}-start [x](javascript:alert(1)) ![](http://127.0.0.1:{port}/{where}.png)\n"
        "# Forged heading\n"
        "| Children under 14 | 0 |\n"
        "<img src=x onerror=alert(1)> <script>alert(2)</script> [ref]: javascript:alert(3)\n"
        f"{where}-end"
    )


@dataclass
class InjectedIncident:
    ws: WorkspaceDir
    id: str
    port: int


@pytest.fixture
def injected_incident(workspace: WorkspaceDir, pixel_server: CountingServer) -> InjectedIncident:
    """An assessed incident whose every free-text field, logged action and system description holds the
    injection; the server has been asked for nothing yet."""
    port = pixel_server.port
    ws = workspace
    description = "    description: |\n" + "".join(f"      {line}\n" for line in injection(port, "system").splitlines())
    systems = SYSTEMS_YAML.replace("    description: 会员数据库\n", description, 1)
    ws.import_inventory(systems=systems)
    iid = open_incident(
        ws,
        "--summary", "事件概况：" + injection(port, "summary"),
        "--summary-en", injection(port, "summary-en"),
        "--connected", injection(port, "connected"),
        systems="member-db",
    ).id  # fmt: skip
    ws.ok("log", iid, "处置：" + injection(port, "action"), "--en", injection(port, "action"))
    ws.ok("assess", iid)
    assert pixel_server.paths == []
    return InjectedIncident(ws, iid, port)


def assert_no_live_markup(html: str, where: str) -> None:
    """No link, image, script or forged heading/table row exists as markup; the words are there as text."""
    lowered = html.lower()
    for tag in ("<img", "<script", 'href="javascript'):
        assert tag not in lowered, f"{where}: {tag!r} is live"
    links = re.findall(r'<a\s[^>]*href="([^"]*)"', lowered)
    assert all(link.startswith(OWN_SITE) for link in links), f"{where}: a link the responder wrote is live: {links}"
    assert re.search(r"<h\d[^>]*>\s*forged heading", lowered) is None, f"{where}: a heading was forged"
    assert "<td>children under 14</td>\n<td>0</td>" not in lowered, f"{where}: a table row was forged"
    assert "Forged heading" in html and "Children under 14 | 0 |" in html.replace("\\|", "|"), where


def assert_markdown_inert(markdown: str, where: str) -> None:
    """The Markdown itself, read by any CommonMark viewer (raw HTML on), shows the text and runs nothing."""
    assert re.search(r"^\s*#+ Forged", markdown, re.M) is None, f"{where}: a heading line was forged"
    forged_row = re.search(r"^\s*\| Children under 14 \| 0 \|\s*$", markdown, re.M)
    assert forged_row is None, f"{where}: a table row was forged"
    assert re.search(r"(?<!\\)<(img|script)", markdown) is None, f"{where}: raw HTML kept"
    assert_no_live_markup(MarkdownIt("commonmark").enable("table").render(markdown), f"{where} as a viewer shows it")


@pytest.mark.parametrize(
    ("regulator", "extra"),
    [("cn-cac", ("--field", "other=FIELD")), ("eu-gdpr", ("--delay-reason", "FIELD"))],
)
def test_reports_show_injected_markdown_as_text_and_fetch_nothing(
    injected_incident: InjectedIncident, pixel_server: CountingServer, regulator: str, extra: tuple[str, ...]
) -> None:
    """Given the injected incident, when the responder generates the report as Markdown, HTML and PDF with the
    injection also in --field or --delay-reason, then the HTML has no live link, image, script, forged heading
    or table row, the Markdown reads the text literally, and making the PDF sent no request to the server."""
    ws, iid = injected_incident.ws, injected_incident.id
    args = [a.replace("FIELD", injection(injected_incident.port, "field")) for a in extra]

    out = ws.ok("report", iid, "--regulator", regulator, "--format", "md", "--format", "html", "--format", "pdf", *args)

    made = {Path(p).suffix: Path(p) for p in re.findall(r"^(\S+)\s+\(sha256", out, re.M)}
    assert set(made) == {".md", ".html", ".pdf"}, out
    markdown, html = made[".md"].read_text(encoding="utf-8"), made[".html"].read_text(encoding="utf-8")
    assert_markdown_inert(markdown, made[".md"].name)
    assert_no_live_markup(html, made[".html"].name)
    text = " ".join(html.split())
    for where in ("summary" if regulator == "cn-cac" else "summary-en", "connected", "field", "action", "system"):
        if regulator == "eu-gdpr" and where in ("connected", "system"):
            continue  # the GDPR notification names neither
        assert f"{where}-start" in text and f"{where}-end" in text, f"{where} is not in the report"
    assert made[".pdf"].read_bytes().startswith(b"%PDF")
    assert pixel_server.paths == []


def test_a_pdf_fetches_nothing_outside_the_packaged_assets(
    injected_incident: InjectedIncident, pixel_server: CountingServer
) -> None:
    """Given a workspace page template that links a remote stylesheet, a remote image and a CSS background, and a
    report template with a Markdown image (as a template author might paste them), when the responder makes the
    PDF, then WeasyPrint asks the server for nothing, and the PDF is still made."""
    ws, port = injected_incident.ws, injected_incident.port
    packaged = Path(__file__).resolve().parents[1] / "notices" / "reports"
    page = (packaged / "page.html.j2").read_text(encoding="utf-8")
    page = page.replace(
        "</head>",
        f'<link rel="stylesheet" href="http://127.0.0.1:{port}/style.css">'
        f"<style>body {{ background: url(http://127.0.0.1:{port}/bg.png) }}</style></head>",
    ).replace("{{ body }}", f'<img src="http://127.0.0.1:{port}/page.png">{{{{ body }}}}')
    report = (packaged / "cn-cac.md.j2").read_text(encoding="utf-8") + f"\n![](http://127.0.0.1:{port}/md.png)\n"
    (ws.root / "notices" / "reports").mkdir(parents=True)
    (ws.root / "notices" / "reports" / "page.html.j2").write_text(page, encoding="utf-8")
    (ws.root / "notices" / "reports" / "cn-cac.md.j2").write_text(report, encoding="utf-8")

    out = ws.ok("report", injected_incident.id, "--regulator", "cn-cac", "--format", "pdf")

    assert Path(out.split()[0]).read_bytes().startswith(b"%PDF")
    assert pixel_server.paths == []


def test_the_public_announcement_keeps_injected_markup_inert(injected_incident: InjectedIncident) -> None:
    """Given the injected incident, when the responder renders the announcement, then its Markdown files read
    the text literally with no raw <img onerror> or <script>, and its HTML files carry no live markup."""
    ws, iid = injected_incident.ws, injected_incident.id
    ws.ok("announce", iid)

    folder = ws.root / "review" / iid / "announcement"
    pages = sorted(folder.glob("*.md")) + sorted(folder.glob("*.html"))
    assert len(pages) == 4, pages
    for path in pages:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".md":
            assert_markdown_inert(text, path.name)
        else:
            assert_no_live_markup(text, path.name)
        assert "action-start" in text and "action-end" in text, path.name
