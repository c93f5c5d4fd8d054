"""SSH signatures over approval statements: `ssh-keygen -Y sign` makes them, `-Y check-novalidate` checks them.

A signature makes an approval attributable to whoever holds the key, not to a typed name. The namespace keeps a
signature made for this purpose from being replayed as any other kind of SSH signature."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from incident.errors import IncidentError, InvalidArgument

NAMESPACE = "incident-approval"
TIMEOUT = 30  # seconds: ssh-keygen never waits for a passphrase here (no terminal), but a hung agent might
FINGERPRINT = re.compile(r"\b(SHA256:[A-Za-z0-9+/=]+)")


def _ssh_keygen() -> str:
    found = shutil.which("ssh-keygen")
    if found is None:
        raise IncidentError("ssh-keygen is not installed (it signs and checks approvals: install OpenSSH)")
    return found


def _run(args: list[str], data: bytes) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run([_ssh_keygen(), *args], input=data, capture_output=True, timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise IncidentError(f"ssh-keygen did not run: {exc}") from None


def _last_line(output: bytes) -> str:
    lines = output.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else "no output"


def sign(statement: str, key: Path) -> tuple[str, str]:
    """Sign the statement with the private SSH key file; return (armoured signature, the key's fingerprint)."""
    if not key.is_file():
        raise InvalidArgument(f"--sign: {key}: not a key file")
    done = _run(["-Y", "sign", "-n", NAMESPACE, "-f", str(key), "-q"], statement.encode("utf-8"))
    signature = done.stdout.decode("ascii", "replace")
    if done.returncode != 0 or "BEGIN SSH SIGNATURE" not in signature:
        raise InvalidArgument(f"--sign: {key}: ssh-keygen could not sign: {_last_line(done.stderr)}")
    problem, fingerprint = check(statement, signature)
    if problem is not None or fingerprint is None:
        raise InvalidArgument(f"--sign: {key}: the signature made does not verify: {problem}")
    return signature, fingerprint


def check(statement: str, signature: str) -> tuple[str | None, str | None]:
    """Check a signature over the statement (made by the key it names): (problem or None, key fingerprint)."""
    with tempfile.TemporaryDirectory() as tmp:
        sig = Path(tmp) / "statement.sig"
        sig.write_text(signature, encoding="ascii", errors="replace")
        done = _run(["-Y", "check-novalidate", "-n", NAMESPACE, "-s", str(sig)], statement.encode("utf-8"))
    said = done.stdout.decode("utf-8", "replace") + done.stderr.decode("utf-8", "replace")
    found = FINGERPRINT.search(said)
    if done.returncode != 0 or found is None:
        return f"signature does not verify ({_last_line(done.stderr or done.stdout)})", None
    return None, found.group(1)
