"""Issue 12: `config show` masks every secret form a responder may write into incident.toml, by apprise's own
privacy rendering of each notification URL, and shows ${NAME} references as written."""

from __future__ import annotations

import json

import pytest
from support import WorkspaceDir

pytestmark = pytest.mark.nodb

# The eleven literal secret forms `config show` printed in the clear before (issue 12).
SECRETS = {
    "pushbullet host token": "o.PbTokenSecret0123456789abcdef",
    "prowl host token": "ProwlApiKeySecret" + "0" * 23,
    "pushover user key": "PushoverUserKeySecret000000001",
    "pushover app token": "PushoverAppTokenSecret00000002",
    "gotify path token": "GotifyTokenSecret1",
    "pwd=": "PwdSecret5",
    "session=": "SessionSecret6",
    "code=": "CodeSecret7",
    "sms_pw=": "SmsPwSecret8",
    "URL fragment": "FragmentSecret9",
    "organisation.smtp_login": "SmtpLoginSecret10",
}
S = SECRETS
CHANNELS = f"""
[channels.email]
url = "mailtos://${{SMTP_USER}}:${{SMTP_PASS}}@smtp.example.com/{{email}}?from=security@example.com"
retries = 3

[channels.sms]
url = "json://gw.example.com/sms?:to={{phone}}&pwd={S["pwd="]}&session={S["session="]}&code={S["code="]}&sms_pw={S["sms_pw="]}"
retries = 3

[channels.push]
url = "json://push.example.com/send?:to={{push_token}}#{S["URL fragment"]}"
retries = 3

[announcement]
targets = [
  "pbul://{S["pushbullet host token"]}",
  "prowl://{S["prowl host token"]}",
  "pover://{S["pushover user key"]}@{S["pushover app token"]}",
  "gotify://gotify.example.com/{S["gotify path token"]}",
]

[oncall]
url = "ntfys://${{NTFY_TOKEN}}@ntfy.example.com/incident-oncall"
margin_hours = 24
"""


@pytest.fixture
def workspace_with_literal_secrets(workspace: WorkspaceDir) -> WorkspaceDir:
    """A workspace whose incident.toml holds each secret form literally, next to ${NAME} references."""
    path = workspace.root / "incident.toml"
    head = path.read_text(encoding="utf-8").split("[channels.email]")[0]
    head = head.replace("[organisation]\n", f'[organisation]\nsmtp_login = "{S["organisation.smtp_login"]}"\n', 1)
    path.write_text(head + CHANNELS, encoding="utf-8")
    return workspace


def test_config_show_masks_every_literal_secret_form(workspace_with_literal_secrets: WorkspaceDir) -> None:
    """Given host tokens, a path token, credential query parameters, a URL fragment and an SMTP login written
    literally into incident.toml, when the responder runs `config show` (text and --json), then none of the
    secrets is printed, while the hosts and the ${NAME} references and {phone} slots still read as written."""
    ws = workspace_with_literal_secrets

    text = ws.ok("config", "show")
    as_json = ws.ok("config", "show", "--json")

    shown = {form: secret for form, secret in SECRETS.items() if secret in text or secret in as_json}
    assert shown == {}, text
    for readable in ("${SMTP_USER}", "${NTFY_TOKEN}", "{phone}", "gw.example.com", "gotify.example.com", "pbul://"):
        assert readable in text, text
    assert json.loads(as_json)["organisation"]["smtp_login"] == "****"
