"""Responder text printed to the terminal cannot carry escape sequences or bidi overrides."""

from __future__ import annotations

from support import OpenedIncident

HOSTILE = "\x1b]0;pwned\x07\x1b[2J清屏\u202eevil\u202c done"


def test_show_and_list_print_responder_text_without_control_sequences(opened_incident: OpenedIncident) -> None:
    """Given a log entry with an OSC title sequence, a clear-screen escape and a bidi override, when the
    responder runs `show` and `list`, then none of those characters reaches the terminal; the words do."""
    ws = opened_incident.ws
    ws.ok("log", opened_incident.id, HOSTILE)

    shown, listed = ws.ok("show", opened_incident.id), ws.ok("list")

    for out in (shown, listed):
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "清屏" in shown and "evil" in shown and "done" in shown


def test_config_show_masks_a_url_signature(workspace) -> None:
    """Given a channel URL signed with ?sig=, then `config show` masks the signature."""
    config = workspace.root / "incident.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            'url = "outbox://sms/{phone}"', 'url = "json://gw.example.com/sms?to={phone}&sig=s3cr3tSIGNATURE"'
        ),
        encoding="utf-8",
    )

    out = workspace.ok("config", "show")

    assert "s3cr3tSIGNATURE" not in out and "sig=****" in out
