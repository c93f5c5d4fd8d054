"""Tables owned by notices (renders, rendered notices) and their named queries."""

from __future__ import annotations

import hashlib
import json
import secrets
import zlib
from collections.abc import Collection, Iterator
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy import Column, LargeBinary, Text, UniqueConstraint, text
from sqlmodel import Field, Session, SQLModel, select

from incident.db import UTCDateTime
from incident.errors import CorruptRecord

CHANNELS = ("email", "sms", "push", "letter")


class Render(SQLModel, table=True):
    """One run of `incident notices render`: its manifest hash and what went into it."""

    __tablename__ = "render"
    id: int | None = Field(default=None, primary_key=True)
    incident_id: str = Field(foreign_key="incident.id", index=True)
    at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    actor: str
    manifest_hash: str
    fingerprint: str = Field(sa_column=Column(Text, nullable=False))
    notices: int
    people: int
    variants: str = Field(sa_column=Column(Text, nullable=False))
    lint: str = Field(sa_column=Column(Text, nullable=False))
    bundle: str


class Notice(SQLModel, table=True):
    """One rendered notice: one person (or guardian), one channel, exact content and its hash."""

    __tablename__ = "notice"
    # Several renders' notices live side by side: what planned deliveries still send, and what attempts sent.
    __table_args__ = (UniqueConstraint("render_id", "person_id", "channel", name="uq_notice_render"),)
    id: int | None = Field(default=None, primary_key=True)
    render_id: int = Field(foreign_key="render.id")
    incident_id: str = Field(foreign_key="incident.id")
    person_id: str
    channel: str
    locale: str
    audience: str
    variant: str
    ref: str
    subject: str = Field(sa_column=Column(Text, nullable=False))
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # see pack_content
    html: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    sha256: str


def pack_content(body: str, html: str | None) -> tuple[bytes, bytes | None]:
    """A notice's text and HTML as stored: zlib-compressed UTF-8, the HTML with the text as preset dictionary.

    The HTML repeats the text, so the dictionary makes it a third smaller and quicker to compress (the render
    stores hundreds of thousands of these). Rows stored without a dictionary still unpack: zlib asks for one only
    when the stream was made with one.
    """
    raw = body.encode()
    packed = zlib.compress(raw, 1)
    if html is None:
        return packed, None
    compressor = zlib.compressobj(1, zdict=raw)
    return packed, compressor.compress(html.encode()) + compressor.flush()


def unpack_content(body: bytes, html: bytes | None, where: str = "a stored notice") -> tuple[str, str | None]:
    """The text and HTML of a stored notice (pack_content undone); a damaged row is a CorruptRecord naming it."""
    try:
        raw = zlib.decompress(body)
        if html is None:
            return raw.decode(), None
        decompressor = zlib.decompressobj(zdict=raw)
        return raw.decode(), (decompressor.decompress(html) + decompressor.flush()).decode()
    except (zlib.error, UnicodeDecodeError, TypeError) as exc:
        raise CorruptRecord(where, f"its content does not unpack ({type(exc).__name__})") from None


def stored_notice(session: Session, incident_id: str, person_id: str, channel: str | None) -> list[dict[str, Any]]:
    """One person's notices of the newest render (on one channel, or all), decompressed, in render order."""
    newest = finished_render(session, incident_id)
    stmt = select(Notice).where(
        Notice.incident_id == incident_id,
        Notice.person_id == person_id,
        Notice.render_id == (newest.id if newest is not None else -1),
    )
    if channel:
        stmt = stmt.where(Notice.channel == channel)
    out = []
    for n in session.exec(stmt.order_by(Notice.id)):  # type: ignore[arg-type]
        body, html = unpack_content(n.body, n.html, f"notice {n.id} ({n.person_id}, {n.channel})")
        out.append(
            {
                "channel": n.channel,
                "locale": n.locale,
                "audience": n.audience,
                "ref": n.ref,
                "subject": n.subject,
                "body": body,
                "html": html,
                "sha256": n.sha256,
            }
        )
    return out


def workspace_secret(session: Session) -> str:
    """The workspace's secret for notice references (created once, kept in the database)."""
    conn = session.connection()
    found = conn.execute(text("SELECT value FROM schema_meta WHERE key = 'notice_secret'")).scalar()
    if found:
        return str(found)
    value = secrets.token_hex(32)
    conn.execute(text("INSERT INTO schema_meta (key, value) VALUES ('notice_secret', :v)"), {"v": value})
    return value


def notice_sha(subject: str, body: str, html: str | None) -> str:
    """The hash an approval binds to, for one notice."""
    return hashlib.sha256("\x1f".join((subject, body, html or "")).encode("utf-8")).hexdigest()


UNFINISHED = ""  # a render row's manifest hash until its render has finished and committed


def start_render(session: Session, incident_id: str, actor: str, at: datetime) -> int:
    """Record that a render has started (its own commit, so a concurrent approval sees it); drop the rows of
    earlier renders that never finished (interrupted: they wrote nothing else)."""
    abandon_renders(session, incident_id)
    record = Render(
        incident_id=incident_id,
        at=at,
        actor=actor,
        manifest_hash=UNFINISHED,
        fingerprint="{}",
        notices=0,
        people=0,
        variants="{}",
        lint="{}",
        bundle="",
    )
    session.add(record)
    session.flush()
    assert record.id is not None  # flushed: the database gave it its id
    return record.id


def abandon_renders(session: Session, incident_id: str) -> None:
    """Drop the incident's render rows that never finished."""
    session.connection().execute(
        text("DELETE FROM render WHERE incident_id = :iid AND manifest_hash = :u"),
        {"iid": incident_id, "u": UNFINISHED},
    )


def unfinished_render(session: Session, incident_id: str) -> Render | None:
    """The render of the incident's notices that has started and not finished, if one has."""
    stmt = select(Render).where(Render.incident_id == incident_id, Render.manifest_hash == UNFINISHED)
    return session.exec(stmt.order_by(Render.id.desc())).first()  # type: ignore[union-attr]


def finished_render(session: Session, incident_id: str) -> Render | None:
    """The newest finished render of an incident's notices."""
    stmt = select(Render).where(Render.incident_id == incident_id, Render.manifest_hash != UNFINISHED)
    return session.exec(stmt.order_by(Render.id.desc())).first()  # type: ignore[union-attr]


def delete_notices(session: Session, incident_id: str, *, keep_renders: Collection[int] = ()) -> None:
    """Drop an incident's rendered notices before a new render writes them again, except those of `keep_renders`
    (renders that deliveries still send or that attempts sent: the proof of delivery names their hashes)."""
    sql = text("DELETE FROM notice WHERE incident_id = :iid AND render_id NOT IN :keep").bindparams(
        sa.bindparam("keep", expanding=True)
    )
    session.connection().execute(sql, {"iid": incident_id, "keep": sorted(keep_renders) or [-1]})


def count_notices(session: Session, incident_id: str) -> int:
    """How many rendered notices the incident holds."""
    sql = text("SELECT COUNT(*) FROM notice WHERE incident_id = :i")
    return int(session.connection().execute(sql, {"i": incident_id}).scalar_one())


def forget_notices(session: Session, incident_id: str) -> int:
    """Delete the incident's rendered notices for a purge, and the names of the people its renders held back
    (their number stays); return how many notices went."""
    n = count_notices(session, incident_id)
    delete_notices(session, incident_id)
    for render in session.exec(select(Render).where(Render.incident_id == incident_id)):
        lint = json.loads(render.lint or "{}")
        if isinstance(lint, dict) and lint.get("held"):
            lint["held_count"], lint["held"] = len(lint["held"]), []
            render.lint = json.dumps(lint)
            session.add(render)
    return n


# ---- what dispatch reads of the notices (with the addresses they go to) -------------------------------------
STREAM = {"stream_results": True, "yield_per": 5000}

_NOTICE = sa.table(
    "notice",
    *(
        sa.column(c)
        for c in (
            "id",
            "render_id",
            "incident_id",
            "person_id",
            "channel",
            "ref",
            "subject",
            "body",
            "html",
            "sha256",
            "variant",
        )
    ),
)
_AFFECTED = sa.table(
    "affected", *(sa.column(c) for c in ("incident_id", "person_id", "to_email", "to_phone", "to_push"))
)


class ClaimNotice(NamedTuple):
    """The approved notice of one person on one channel, with the address it goes to."""

    id: int
    ref: str
    subject: str
    body: Any  # stored form: see notices.models.unpack_content
    html: Any
    sha256: str
    to_email: str | None
    to_phone: str | None
    to_push: str | None

    def address(self, channel: str) -> str:
        """Where this notice goes on `channel` (email address, phone number or push token)."""
        return {"email": self.to_email, "sms": self.to_phone, "push": self.to_push}[channel] or ""


def channels_with_notice(session: Session, incident_id: str, render_id: int) -> Iterator[Any]:
    """(person_id, channel or None) for every affected person and each channel they have a notice on in the
    render, streamed in person order."""
    return iter(
        session.connection().execute(
            text(
                "SELECT a.person_id, n.channel FROM affected a LEFT JOIN notice n ON n.incident_id = a.incident_id "
                "AND n.person_id = a.person_id AND n.render_id = :r WHERE a.incident_id = :i "
                "ORDER BY a.person_id, n.id"
            ),
            {"i": incident_id, "r": render_id},
            execution_options=STREAM,
        )
    )


def notices_to_claim(
    session: Session, incident_id: str, person_ids: list[str], render_ids: Collection[int]
) -> dict[tuple[str, str, int], ClaimNotice]:
    """The notices of these people in these renders, by (person, channel, render), each with the addresses."""
    n, a = _NOTICE, _AFFECTED
    rows = session.connection().execute(
        sa.select(
            n.c.person_id,
            n.c.channel,
            n.c.render_id,
            n.c.id,
            n.c.ref,
            n.c.subject,
            n.c.body,
            n.c.html,
            n.c.sha256,
            a.c.to_email,
            a.c.to_phone,
            a.c.to_push,
        )
        .join(a, sa.and_(a.c.incident_id == n.c.incident_id, a.c.person_id == n.c.person_id))
        .where(n.c.incident_id == incident_id, n.c.person_id.in_(person_ids), n.c.render_id.in_(sorted(render_ids)))
    )
    return {(r[0], r[1], r[2]): ClaimNotice._make(r[3:]) for r in rows}


def notice_variants(session: Session, incident_id: str, render_id: int) -> Iterator[Any]:
    """(person_id, channel, variant) of every notice of the render, streamed in person order."""
    return iter(
        session.connection().execute(
            text(
                "SELECT person_id, channel, variant FROM notice WHERE incident_id = :i AND render_id = :r "
                "ORDER BY person_id"
            ),
            {"i": incident_id, "r": render_id},
            execution_options=STREAM,
        )
    )
