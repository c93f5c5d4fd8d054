"""The transport core stands alone: importing it loads no scheme module (and not apprise); register() loads them."""

from __future__ import annotations

import json
import subprocess
import sys

SCHEMES = ("outbox", "smtppool", "gateway")

IMPORT_CORE = """
import json, sys
import incident.dispatch.transports as transports
loaded = lambda: [m for m in json.loads(sys.argv[1]) if m in sys.modules]
before = loaded()
transports.register()
print(json.dumps({"before": before, "after": loaded()}))
"""


def test_importing_the_transport_core_imports_no_scheme_module() -> None:
    """Given a fresh interpreter, when incident.dispatch.transports is imported, then no scheme module (nor apprise)
    is loaded; and when register() runs, then every scheme module is."""
    modules = [f"incident.dispatch.transports.{s}" for s in SCHEMES]

    done = subprocess.run(
        [sys.executable, "-c", IMPORT_CORE, json.dumps([*modules, "apprise"])],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert loaded["before"] == [], f"importing the core loaded {loaded['before']}"
    assert sorted(loaded["after"]) == sorted([*modules, "apprise"])
