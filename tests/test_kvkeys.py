"""The shared kv's keys (zenzefi/kvkeys.py): spelled in one module, and spelled as deployed.

A rolling deploy runs old and new processes against the same Redis: a key that changed its
spelling would lose every entry (validation cache, sessions, bans) or, worse, let two versions
count one limit twice.
"""

from __future__ import annotations

import re
from pathlib import Path

from zenzefi import kvkeys

ROOT = Path(__file__).resolve().parent.parent


def test_keys_are_spelled_as_deployed():
    d = "ab" * 32
    assert kvkeys.token_validation_key(d) == f"tokval:{d}"
    assert kvkeys.proxy_rate_key(d, 29000000) == f"pxrl:{d}:29000000"
    assert kvkeys.proxy_device_key(d) == f"pxdev:{d}"
    assert kvkeys.proxy_inflight_key(d) == f"pxcc:{d}"
    assert kvkeys.proxy_counters_key("s1") == "pxs:s1"
    assert kvkeys.PROXY_DIRTY_KEY == "pxdirty"
    assert kvkeys.proxy_claim_key(d) == f"pxclaim:{d}"
    assert kvkeys.proxy_conflict_key(d, "h1") == f"pxconf:{d}:h1"
    assert kvkeys.proxy_cookie_key("c1") == "pxck:c1"
    assert kvkeys.proxy_entry_key("e1") == "pxenter:e1"
    assert kvkeys.RATE_BAN_INDEX_KEY == "rl:bans"
    assert kvkeys.rate_api_key("u7", 123) == "rl:api:u7:123"
    assert kvkeys.rate_streak_key("ip1.2.3.4") == "rl:streak:ip1.2.3.4"
    assert kvkeys.rate_ban_key("u7") == "rl:ban:u7"
    assert kvkeys.HEALTH_KEY == "health:status"
    assert kvkeys.GAUGES_KEY == "gauges:figures"
    assert kvkeys.LAST_BACKUP_KEY == "backups:last"
    assert kvkeys.payment_callback_audit_key("10.0.0.1", 5) == "payments:callback-audit:10.0.0.1:5"


# A string literal that starts like one of the kv's keys (plain or f-string).
KEY_LITERAL = re.compile(
    r"""f?["'](?:tokval|px(?:rl|dev|cc|s|claim|conf|ck|enter)|rl:(?:api|bans?|streak)|"""
    r"""health:status|gauges:figures|backups:last|payments:callback-audit)[:"']"""
)


def test_no_kv_key_is_spelled_outside_the_keys_module():
    skip = {ROOT / "zenzefi" / "kvkeys.py"}
    offenders = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in {".venv", "var", "tests", "bench", "node_modules"} or path in skip:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if KEY_LITERAL.search(line):
                offenders.append(f"{rel}:{number}: {line.strip()}")
    assert offenders == []
