"""The lawyer-edited data: data categories and playbooks load, and a broken file points at its mistake."""

from __future__ import annotations

import shutil

import pytest
from support import WorkspaceDir

from incident import catalog

POLICY_CATEGORIES = {
    "phone",
    "member_name",
    "password",
    "device_info",
    "device_id",
    "ip_address",
    "logs",
    "real_name",
    "gender",
    "birth_date",
    "residence",
    "nickname",
    "avatar",
    "id_document",
    "biometric_face",
    "recipient_name",
    "shipping_address",
    "recipient_phone",
    "order_details",
    "payment_account",
    "bank_card",
    "customer_service_records",
    "reviews",
    "favorites_cart",
    "location",
    "cookies",
}

SHIPPED_PLAYBOOKS = (
    "database-exfiltration",
    "credential-stuffing",
    "ransomware",
    "processor-breach",
    "misdirected-message",
    "lost-device",
    "insider-misuse",
)


def test_the_catalogue_has_exactly_the_policy_categories() -> None:
    """Given the shipped catalogue, then its keys are exactly the 26 the import format uses."""
    keys = [c.key for c in catalog.categories().categories]

    assert len(keys) == 26
    assert set(keys) == POLICY_CATEGORIES


@pytest.mark.parametrize("key", sorted(POLICY_CATEGORIES))
def test_every_category_speaks_both_locales(key: str) -> None:
    """Given a category, then its label, impact and every piece of advice read in zh-CN and in English."""
    cats = catalog.categories()
    category = cats.by_key()[key]

    for locale in ("zh-CN", "en"):
        assert category.label(locale).strip()
        assert category.impact(locale).strip()
        assert category.urgent_action(locale).strip()
        assert category.advice, key
        for ref in category.advice:
            assert cats.advice[ref](locale).strip()
    assert category.label("zh-CN") != category.label("en")


@pytest.mark.parametrize("key", ["id_document", "biometric_face", "bank_card", "location", "order_details", "phone"])
def test_the_policy_sensitive_categories_are_flagged(key: str) -> None:
    """Given the policy's definition of sensitive personal information, then these categories are sensitive."""
    assert catalog.categories().by_key()[key].sensitive


@pytest.mark.parametrize("key", ["nickname", "favorites_cart"])
def test_plain_categories_are_not_flagged_sensitive(key: str) -> None:
    """Given a category the policy does not call sensitive, then it is not flagged."""
    assert not catalog.categories().by_key()[key].sensitive


@pytest.mark.parametrize("key", SHIPPED_PLAYBOOKS)
def test_every_shipped_playbook_loads(key: str) -> None:
    """Given a playbook the issue names, then it loads, its categories exist, and it has a checklist, wording
    and remedies in both locales."""
    book = catalog.playbook(key)

    assert book.key == key
    assert set(book.categories) <= POLICY_CATEGORIES
    assert book.title("zh-CN") and book.title("en")
    assert book.containment and book.remedies and book.measures_done
    assert book.channels
    assert key in catalog.playbook_keys()


def test_the_jurisdiction_rules_load() -> None:
    """Given the shipped rules, then China applies always and the CAC grades are ordered by head-count."""
    rules = catalog.jurisdictions()

    assert [r.key for r in rules.regimes if r.always] == ["cn"]
    assert rules.grade_for(0).key == "general"


def broken_playbook(ws: WorkspaceDir, old: str, new: str, marker: str = "") -> tuple[str, int]:
    """Copy database-exfiltration.yaml into the workspace with `old` replaced by `new`; return the path and the
    line holding `marker` (default: the last line of `new`)."""
    target = ws.root / "playbooks" / "database-exfiltration.yaml"
    target.parent.mkdir(exist_ok=True)
    shutil.copy(catalog.data_dir() / "database-exfiltration.yaml", target)
    text = target.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    text = text.replace(old, new)
    target.write_text(text, encoding="utf-8")
    marker = marker or new.splitlines()[-1]
    line = next(n for n, row in enumerate(text.splitlines(), 1) if marker in row)
    return str(target), line


# (text replaced, replacement, text on the line the error must name, field, problem)
BROKEN = {
    "wrong type": (
        "channels: [email, sms, push]",
        "channels: [email, fax]",
        "fax",
        "channels.1",
        "Input should be 'email', 'sms' or 'push'",
    ),
    "list given as text": (
        "exclude_channels: []",
        "exclude_channels: sms",
        "exclude_channels: sms",
        "exclude_channels",
        "Input should be a valid list",
    ),
    "unknown key": (
        "exclude_channels: []",
        "exclude_channels: []\nseverity: high",
        "severity",
        "severity",
        "unknown key",
    ),
    "unknown category": (
        "categories: [phone, member_name,",
        "categories: [phone, shoe_size,",
        "shoe_size",
        "categories.1",
        "unknown category 'shoe_size'",
    ),
    # A missing key is reported at the mapping that lacks it.
    "missing locale": (
        "  en: Database exfiltration\n",
        "",
        "zh-CN: 数据库数据被非法窃取",
        "title.en",
        "Field required",
    ),
}


@pytest.mark.parametrize(("old", "new", "marker", "field", "problem"), list(BROKEN.values()), ids=list(BROKEN))
def test_a_broken_workspace_playbook_names_file_line_and_field(
    inventory_with_backups: WorkspaceDir, old: str, new: str, marker: str, field: str, problem: str
) -> None:
    """Given a workspace copy of a playbook with a mistake, when an incident is opened from it, then the error
    reads `file:line: field: problem` and no incident is opened."""
    path, line = broken_playbook(inventory_with_backups, old, new, marker)

    inventory_with_backups.refuse(
        "open",
        "--playbook",
        "database-exfiltration",
        "--title",
        "t",
        "--systems",
        "member-db",
        "--from",
        "2026-01-01",
        "--to",
        "2026-03-01",
        error=f"error: {path}:{line}: {field}: {problem}",
    )

    assert inventory_with_backups.sql("SELECT COUNT(*) FROM incident") == [(0,)]


def test_a_workspace_playbook_overrides_the_shipped_one(inventory_with_backups: WorkspaceDir) -> None:
    """Given a workspace copy of a playbook with other default categories, when an incident is opened without
    --categories, then the workspace's categories are used."""
    broken_playbook(
        inventory_with_backups,
        "categories: [phone, member_name, password, real_name,",
        "categories: [bank_card, member_name, password, real_name,",
    )

    incident_id = inventory_with_backups.ok(
        "open",
        "--playbook",
        "database-exfiltration",
        "--title",
        "t",
        "--systems",
        "member-db",
        "--from",
        "2026-01-01",
        "--to",
        "2026-03-01",
    ).strip()

    categories = inventory_with_backups.json("show", incident_id)["categories"]
    assert "bank_card" in categories and "phone" not in categories
