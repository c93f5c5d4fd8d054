"""Issue 12, High 1: one person's own data (a display name they picked) can hold back their notice only.

Given an inventory where people chose names that look like template syntax or carry someone else's address,
when the responder renders the notices, then everyone else's notices render, the person whose data fails a check
is held back and named (on the review page, by `notices render`, `notices show` and `show`), and a real template
leftover still stops the whole render."""

from __future__ import annotations

from dataclasses import replace

import pytest
from support import MEMBER_DB_YAML, WorkspaceDir, people_csv
from test_notices import CAST, EN_ADULT, EN_CHILD, ZH_ADULT, Story, holdings_csv, notices_of, open_story, override

TEMPLATE_LOOKING = replace(EN_ADULT, person_id="en-braces", name="{{ 7*7 }} {# x #} ${HOME} Undefined")
TEMPLATE_LOOKING_ZH = replace(ZH_ADULT, person_id="zh-braces", name="{{王}}${芳}", email="braces@example.cn")
CARRIES_ANOTHER_ADDRESS = replace(
    EN_ADULT, person_id="en-foreign", name="Mallory grace@example.com", email="mallory@example.com"
)


def story_with(ws: WorkspaceDir, *extra: object) -> Story:
    cast = (*CAST, *extra)
    ws.import_inventory(people=people_csv([p.row() for p in cast]), holdings=holdings_csv(cast), systems=MEMBER_DB_YAML)
    return open_story(ws)


def test_a_name_that_looks_like_template_syntax_is_data_and_everyone_is_notified(workspace: WorkspaceDir):
    story = story_with(workspace, TEMPLATE_LOOKING, TEMPLATE_LOOKING_ZH)
    out = workspace.ok("notices", "render", story.id)
    assert "for 6 people" in out and "held back" not in out, out
    own = notices_of(workspace, story.id, TEMPLATE_LOOKING)["email"]
    assert "{{ 7*7 }} {# x #} ${HOME} Undefined" in own["body"]
    assert "49" not in own["body"].split("ref")[0].split("\n")[0]
    assert "{{王}}${芳}" in notices_of(workspace, story.id, TEMPLATE_LOOKING_ZH)["email"]["body"]
    assert workspace.ok("notices", "show", story.id).strip() == f"{story.id}: nobody is held back"


def test_a_person_whose_own_data_fails_a_check_is_held_back_alone_and_named(workspace: WorkspaceDir):
    story = story_with(workspace, CARRIES_ANOTHER_ADDRESS)
    out = workspace.ok("notices", "render", story.id)
    assert "held back: 1 people" in out and "held back: en-foreign: " in out and "foreign-data" in out, out
    for person in CAST:
        assert notices_of(workspace, story.id, person), person.person_id
    workspace.refuse("notices", "show", story.id, "--person", "en-foreign", error="no rendered notice")
    (held,) = workspace.json("notices", "show", story.id)
    assert held["person_id"] == "en-foreign" and any("foreign-data" in p for p in held["problems"])
    assert workspace.json("show", story.id)["notices"]["held"] == [held]
    assert "held back: en-foreign: " in workspace.ok("show", story.id)
    page = (story.bundle / "index.html").read_text(encoding="utf-8")
    assert 'id="held"' in page and "en-foreign" in page and "mallory@example.com" not in page


def test_held_back_people_are_not_planned_for_sending(workspace: WorkspaceDir):
    story = story_with(workspace, CARRIES_ANOTHER_ADDRESS)
    workspace.ok("notices", "render", story.id)
    assert workspace.sql("SELECT COUNT(*) FROM notice WHERE person_id = 'en-foreign'") == [(0,)]
    assert workspace.sql("SELECT COUNT(DISTINCT person_id) FROM notice") == [(len(CAST),)]


LEFTOVER = "{{ org.platform_en }}: {% raw %}{{ person.name }}{% endraw %} ref {{ notice.ref }}\n"


@pytest.mark.parametrize("extra", [(), (TEMPLATE_LOOKING,)], ids=["plain-names", "with-a-braces-name"])
def test_a_template_leftover_still_stops_the_whole_render(workspace: WorkspaceDir, extra: tuple[object, ...]):
    story = story_with(workspace, *extra)
    override(workspace, "en/sms.txt.j2", LEFTOVER)
    result = workspace.refuse("notices", "render", story.id, error="en/sms.txt.j2: unrendered-placeholder")
    assert "lint failed, nothing was rendered" in result.stderr
    assert workspace.sql("SELECT COUNT(*) FROM notice") == [(0,)]


def test_a_template_too_long_for_sms_stops_the_render_even_with_a_long_name(workspace: WorkspaceDir):
    story = story_with(workspace, replace(EN_CHILD, person_id="en-long", name="A" * 60))
    long_sms = "{{ org.platform_en }} ref {{ notice.ref }}{% for i in range(40) %} Please read it.{% endfor %}\n"
    override(workspace, "en/sms.txt.j2", long_sms)
    workspace.refuse("notices", "render", story.id, error="en/sms.txt.j2: length: SMS needs")
