"""What may be shown of personal data and secrets: masked contacts, masked URLs, and text cleaned of the control,
invisible and direction characters that could forge what a reader sees (in a notice, a report or a terminal)."""

from __future__ import annotations

import re
from typing import Any

# One table of the characters no reader should receive as they are. Tab and line feed are ordinary text.
_C0 = [*range(0x00, 0x09), *range(0x0B, 0x20)]
_DEL_C1 = list(range(0x7F, 0xA0))
# Zero-width characters and marks, bidi embeddings/overrides (U+202A–E) and isolates (U+2066–9): each can make a
# text read differently from what it says (CVE-2021-42574, "Trojan Source").
_INVISIBLE = [*range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
UNSAFE_CHARS = frozenset(map(chr, [*_C0, *_DEL_C1, *_INVISIBLE]))
_UNSAFE = re.compile("[" + "".join(re.escape(c) for c in sorted(UNSAFE_CHARS)) + "]")
_TERMINAL = {ord(c): "\ufffd" for c in UNSAFE_CHARS}
# In an identifier or a one-line field, line breaks are control characters too.
_CONTROL_IN_FIELD = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]|\n|\r")


def clean_text(text: str | None) -> str:
    """Responder or inventory text fit for a notice or report: unsafe characters removed, ends trimmed."""
    return _UNSAFE.sub("", text or "").strip()


def terminal_safe(text: object) -> str:
    """Text for the terminal: every unsafe character shows as U+FFFD, so no escape sequence reaches it."""
    return str(text).translate(_TERMINAL)


def has_control_chars(value: str) -> bool:
    """Whether a one-line field holds a C0 control character, DEL, CR or LF (refused on import)."""
    return _CONTROL_IN_FIELD.search(value) is not None


def mask_name(name: str | None) -> str:
    """张三丰 → 张**, Anna Smith → A*** S****."""
    if not name:
        return ""
    if " " in name:
        return " ".join(mask_name(part) for part in name.split())
    return name[0] + "*" * (len(name) - 1)


def mask_email(email: str | None) -> str:
    """u***@example.com: the domain stays (it tells a bounce's cause), the mailbox goes."""
    if not email:
        return ""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def mask_phone(phone: str | None) -> str:
    """+8613*****0001: country and carrier prefix and the last four digits, never the whole number."""
    if not phone:
        return ""
    return phone[:5] + "*" * max(0, len(phone) - 9) + phone[-4:] if len(phone) > 9 else "****"


def mask_address(channel: str, address: str) -> str:
    """A masked address for logs and proof rows: u***@example.com, +8613*****0001, tok-****."""
    if not address:
        return ""
    if channel == "email" and "@" in address:
        return mask_email(address)
    if channel == "sms":
        return mask_phone(address)
    return address[:4] + "****"


# An email address as servers echo it: plain, upper case, <bracketed>, "quoted"@local part, or %40-encoded.
_EMAIL_TOKEN = re.compile(r'"?[A-Za-z0-9._%+-]+"?(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+')
# Seven digits or more, spaced or dashed: the least a phone number has; shorter runs skip the matcher.
_PHONE_CANDIDATE = re.compile(r"\d(?:[\s().\-/]{0,3}\d){6,}")
PHONE_REGIONS = ("CN", "US")  # tried after the recipient's own region: where this tool's numbers mostly are
_SEP = r"[\s().\-/]*"


def mask_recipient(text: str, channel: str, address: str) -> str:
    """The recipient's own address masked wherever it appears in the text, in any case, and a phone number in
    any spelling (national, E.164, with or without the +, spaced or dashed)."""
    if not text or not address or len(address) <= 3:
        return text
    tail = re.sub(r"\D", "", address)[-7:] if channel == "sms" else ""
    if address.lower() not in text.lower() and not (tail and tail in re.sub(r"\D", "", text)):
        return text  # the common case (a receipt, a plain refusal): no pattern to compile, no number to parse
    masked = mask_address(channel, address)
    text = re.sub(re.escape(address), lambda _: masked, text, flags=re.IGNORECASE)
    if channel == "sms" and address.startswith("+"):
        parsed = _parse_phone(address)
        if parsed is not None:
            digits = _SEP.join(str(parsed.national_number))
            prefix = rf"(?:(?:(?:\+|00){_SEP})?{parsed.country_code}{_SEP})?"
            text = re.sub(rf"(?<!\d){prefix}(?:0{_SEP})?{digits}(?!\d)", lambda _: masked, text)
    return text


def mask_contacts(text: str, channel: str = "", address: str = "") -> str:
    """Provider text (a refusal, an error body) fit for the proof of delivery and the logs: the recipient's own
    address in any spelling, and every email-looking and phone-number-looking token in any format, masked."""
    if not text:
        return text
    text = mask_recipient(text, channel, address)
    text = _EMAIL_TOKEN.sub(lambda m: mask_email(m.group(0).replace('"', "").replace("%40", "@")), text)
    if not _PHONE_CANDIDATE.search(text):
        return text
    import phonenumbers

    recipient = _parse_phone(address) if channel == "sms" else None
    own = phonenumbers.region_code_for_number(recipient) if recipient is not None else None
    for region in dict.fromkeys([r for r in (own, *PHONE_REGIONS) if r]):
        # POSSIBLE: national (13800000001), E.164 and spaced or dashed forms, valid or not (a typo is still a number)
        found = list(phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.POSSIBLE))
        for match in reversed(found):
            e164 = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
            text = text[: match.start] + mask_phone(e164) + text[match.end :]
    return text


def _parse_phone(number: str) -> Any:
    """A phone number as phonenumbers reads it, or None."""
    import phonenumbers

    try:
        return phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None


SECRET_KEYS = (
    "pass",
    "password",
    "token",
    "secret",
    "key",
    "apikey",
    "api_key",
    "auth",
    "authorization",
    "credential",
    "signature",
    "login",
    "cookie",
)
# Short names that mean a credential only as a whole word of a key: `code=`, `sms_pw=`, not `postcode`.
SECRET_WORDS = frozenset({"pw", "pwd", "passwd", "sig", "session", "sid", "code", "otp", "pin", "user", "username"})
# Where incident.toml keeps notification URLs (apprise URLs): anything there apprise cannot read is masked whole.
CHANNEL_SECTIONS = frozenset({"channels", "announcement", "oncall"})
_PATH_TOKEN = re.compile(r"/[A-Za-z0-9_-]{24,}")
_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}|\{(?:email|phone|push_token|address)\}")


def is_secret_key(key: str) -> bool:
    """Whether a configuration key or URL parameter names a credential (token, sms_pw, session, smtp_login...)."""
    bare = key.lstrip("+:-").lower()
    return any(s in bare for s in SECRET_KEYS) or bool(SECRET_WORDS & set(re.split(r"[^a-z0-9]+", bare)))


def mask_url(url: str) -> str:
    """Hide credentials in a URL: user:password@, secret-looking query values and header values."""
    from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.scheme.startswith("sqlite"):  # a file path: nothing secret, and urlunsplit would drop its slashes
        return url
    try:
        odd_port = parts.port is None and parts.netloc.rsplit("@", 1)[-1].rsplit("]", 1)[-1].count(":") > 0
    except ValueError:
        odd_port = True  # tgram://BOT_ID:TOKEN/...: a credential where a port would be
    if "@" not in parts.netloc and not parts.query and len(parts.path) < 25 and not odd_port:
        return url
    netloc = parts.netloc
    if odd_port:
        head, at, host = netloc.rpartition("@")
        netloc = f"{head}{at}{host.rsplit(':', 1)[0]}:****"
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{'****' if ':' in userinfo or not user.startswith('$') else user}:****@{host}"
    query = []
    # In apprise URLs a leading + names a header, not a space.
    for key, value in parse_qsl(parts.query.replace("+", "%2B"), keep_blank_values=True):
        secret = is_secret_key(key) or key.startswith("+")
        query.append(f"{key}={'****' if secret and value else quote(value, safe='@{}$')}")
    path = _PATH_TOKEN.sub("/****", parts.path)  # long path tokens (webhook keys)
    return urlunsplit((parts.scheme, netloc, path, "&".join(query), ""))


def mask_channel_url(url: str, *, own_schemes: tuple[str, ...] = ()) -> str:
    """A notification URL as apprise itself prints it with privacy on (host tokens, path tokens and passwords
    masked the way each service keeps them); every query value apprise does not show as harmless is masked, and a
    URL apprise cannot read is masked whole after its scheme. ${NAME} references and {phone}-style slots stay."""
    from urllib.parse import parse_qsl, urlsplit

    scheme = url.split("://", 1)[0].lower()
    refs: dict[str, str] = {}

    def protect(match: re.Match[str]) -> str:
        token = f"zqref{len(refs)}zq"  # lower-case letters: apprise lower-cases hosts
        refs[token] = match.group(0)
        return token

    def restore(text: str) -> str:
        for token, ref in refs.items():
            text = text.replace(token, ref)
        return text

    protected = _REFERENCE.sub(protect, url)
    if scheme in own_schemes:  # our own schemes keep no secret outside the userinfo and the query
        return restore(mask_url(protected))
    rendered = _apprise_privacy_url(protected)
    if rendered is None:
        return f"{scheme}://****"
    written = dict(parse_qsl(urlsplit(protected).query.replace("+", "%2B"), keep_blank_values=True))
    shown = dict(parse_qsl(urlsplit(rendered).query.replace("+", "%2B"), keep_blank_values=True))
    query = []
    for key, value in written.items():  # only what the responder wrote: apprise adds its defaults
        harmless = key in shown and shown[key] == value and not key.startswith(("+", "-", ":"))
        keep = value in refs or (harmless and not is_secret_key(key))
        query.append(f"{key}={value if keep else '****'}")
    base = rendered.split("?", 1)[0]
    head, sep, rest = base.partition("://")
    userinfo, at, host = rest.partition("@") if "@" in rest.split("/", 1)[0] else ("", "", rest)
    if at:  # apprise shows some user fields (ntfy's token user) as they are: only references stay readable
        parts = urlsplit(protected)
        password = f":{parts.password if parts.password in refs else '****'}" if ":" in userinfo else ""
        userinfo = (parts.username if parts.username in refs else "****") + password
    host = _PATH_TOKEN.sub("/****", host)  # apprise shows a webhook's path as it is: a long token there is a key
    return restore(f"{head}{sep}{userinfo}{at}{host}" + ("?" + "&".join(query) if query else ""))


def _apprise_privacy_url(url: str) -> str | None:
    """apprise's own privacy rendering of a URL, without sending anything (None when apprise cannot read it)."""
    try:
        import apprise

        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
        rendered = str(plugin.url(privacy=True)) if plugin else ""
    except Exception:  # a URL apprise chokes on is one it cannot mask
        return None
    return rendered if rendered.split("://", 1)[-1].strip("/") else None


def masked_config(value: Any, key: str = "", *, section: str = "", own_schemes: tuple[str, ...] = ()) -> Any:
    """The configuration with every secret and credential masked, for printing: notification URLs through
    apprise's privacy rendering, other URLs with their credentials hidden, credential-named keys as ****."""
    if isinstance(value, dict):
        return {k: masked_config(v, k, section=section or k, own_schemes=own_schemes) for k, v in value.items()}
    if isinstance(value, list):
        return [masked_config(v, key, section=section, own_schemes=own_schemes) for v in value]
    if isinstance(value, str) and value:
        if is_secret_key(key) and not (section in CHANNEL_SECTIONS and "://" in value):
            return "****"
        if "://" in value:
            if section in CHANNEL_SECTIONS:
                return mask_channel_url(value, own_schemes=own_schemes)
            return mask_url(value)
    return value
