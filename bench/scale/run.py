# ruff: noqa: E501
"""Time a seeded scale database: admin changelists, customer pages and REST lists at depth, staff
lists and dashboards, and every periodic job (with its due items, then with nothing to do).

    python bench/scale/seed.py --size small          # once (LARGE: --size large, minutes)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/zz_scale_small REDIS_URL=redis://127.0.0.1:6379/8 \
        python bench/scale/run.py [--only admin,pages,staff,jobs] [--repeat 3]

Requests go through Django's test Client (as a superuser for the admin and staff endpoints, as the
heavy customer for the customer pages), in-process: the time is the server's, without network.
Each figure is the median of --repeat runs after one warm-up. Jobs run in a forked child each (so
its peak RSS is its own); before a job's "due" run the database is put back into the seeded state
for that job (RESET below), so the benchmark can be run again on the same database.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from html import unescape
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "zenzefi.settings")
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("RATELIMIT_ENABLE", "false")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib import admin  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402
from django.urls import reverse  # noqa: E402

setup_test_environment()  # testserver host, locmem email
settings.ALLOWED_HOSTS = ["*"]

# Search term per admin changelist (default: a username/email fragment).
SEARCH = {
    "audit.auditlog": "user1234",
    "tokens.accesstoken": "user1234",
    "bundles.tokenbundle": "Pro",
    "django_celery_beat.periodictask": "expire",
}
DEFAULT_SEARCH = "user1234"


def rss_kb() -> tuple[int, int]:
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def reset_hwm() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


DB_MS: list[float] = []


def timed(fn, repeat: int) -> tuple[float, int, object]:
    """Median wall time of `repeat` runs after a warm-up; the query count and (in DB_MS) the
    median time spent in the database, which a loaded machine inflates less than the wall time."""
    fn()  # warm-up
    times, db_times, queries, result = [], [], 0, None
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as ctx:
            started = time.perf_counter()
            result = fn()
            times.append((time.perf_counter() - started) * 1000)
        queries = len(ctx.captured_queries)
        db_times.append(sum(float(q["time"]) for q in ctx.captured_queries) * 1000)
    DB_MS.append(statistics.median(db_times))
    return statistics.median(times), queries, result


ROWS: list[tuple[str, str, str, str]] = []


def row(section: str, what: str, ms: float, extra: str = "") -> None:
    ROWS.append((section, what, f"{ms:,.0f} ms" if ms >= 10 else f"{ms:.1f} ms", extra))
    print(f"{section:8s} {what:70s} {ROWS[-1][2]:>12s}  {extra}", flush=True)


def get(client: Client, url: str, expect=200):
    response = client.get(url)
    if response.status_code != expect:
        raise SystemExit(f"GET {url}: {response.status_code} {response.content[:300]!r}")
    return response


def superuser():
    from accounts.models import User

    user = User.objects.filter(username="scale_admin").first()
    if user is None:
        user = User.objects.create_superuser("scale_admin", "scale_admin@example.com", "x" * 12)
    return user


def bench_admin(repeat: int, only_model: str | None) -> None:
    client = Client()
    client.force_login(superuser())
    for model, model_admin in admin.site._registry.items():
        label = f"{model._meta.app_label}.{model._meta.model_name}"
        if only_model and only_model not in label:
            continue
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        ms, q, response = timed(lambda u=url: get(client, u), repeat)
        row("admin", f"{label} (plain)", ms, f"{q} queries, db {DB_MS[-1]:.0f} ms")
        if model_admin.search_fields:
            term = SEARCH.get(label, DEFAULT_SEARCH)
            ms, q, _ = timed(lambda u=f"{url}?q={term}": get(client, u), repeat)
            row("admin", f"{label} ?q={term}", ms, f"{q} queries, db {DB_MS[-1]:.0f} ms")
        html = response.content.decode()
        block = html.split('id="changelist-filter"', 1)
        if len(block) == 2:
            links = [unescape(h) for h in re.findall(r'href="(\?[^"]+)"', block[1].split("</nav>", 1)[0])]
            links = [h for h in links if h not in ("?",) and "_facets" not in h]
            if links:
                ms, q, _ = timed(lambda u=url + links[0]: get(client, u), repeat)
                row("admin", f"{label} {links[0][:50]}", ms, f"{q} queries, db {DB_MS[-1]:.0f} ms")


def bench_pages(repeat: int) -> None:
    from accounts.models import User

    heavy = User.objects.get(username="heavy")
    client = Client()
    client.force_login(heavy)
    n = heavy.transactions.count()
    per_page = 20
    deep_page = max(1, n // per_page - 1)
    for what, url in [
        ("page: dashboard", "/account/"),
        ("page: transactions p1", "/account/transactions/"),
        (f"page: transactions p{deep_page} (deep)", f"/account/transactions/?page={deep_page}"),
        ("page: tokens", "/account/tokens/"),
        ("page: referrals", "/account/referrals/"),
        ("REST: currency/transactions skip=0", "/api/v1/currency/transactions?skip=0&limit=50"),
        (
            f"REST: currency/transactions skip={n - 60} (deep)",
            f"/api/v1/currency/transactions?skip={n - 60}&limit=50",
        ),
        ("REST: tokens/my-tokens", "/api/v1/tokens/my-tokens"),
        ("REST: currency/payments", "/api/v1/currency/payments"),
        ("REST: users/me/referrals", "/api/v1/users/me/referrals"),
        ("REST: analytics/usage?period=month", "/api/v1/analytics/usage?period=month"),
    ]:
        if url is None:
            continue
        ms, q, response = timed(lambda u=url: get(client, u), repeat)
        row("customer", what, ms, f"{q} queries, db {DB_MS[-1]:.0f} ms, {len(response.content) // 1024} KB")


def _has(name: str) -> bool:
    try:
        reverse(name)
        return True
    except Exception:
        return False


def _named(name: str, app_hint: str = "currency") -> str:
    for candidate in (f"{app_hint}:{name}", f"pages:{name}", name):
        if _has(candidate):
            return reverse(candidate)
    raise SystemExit(f"no url {name}")


def bench_staff(repeat: int) -> None:
    client = Client()
    client.force_login(superuser())
    for what, url in [
        ("staff: admin/users", "/api/v1/admin/users"),
        ("staff: admin/users?search=user1234", "/api/v1/admin/users?search=user1234"),
        ("staff: admin/users skip=150000", "/api/v1/admin/users?skip=150000&limit=50"),
        ("staff: admin/tokens?user_id=1", "/api/v1/admin/tokens?user_id=1"),
        ("staff: global-stats month", "/api/v1/analytics/admin/global-stats?period=month"),
        ("staff: admin dashboard (month)", reverse("analytics-dashboard") + "?period=month"),
        ("staff: admin index", reverse("admin:index")),
    ]:
        ms, q, _response = timed(lambda u=url: get(client, u), repeat)
        row("staff", what, ms, f"{q} queries, db {DB_MS[-1]:.0f} ms")


# --- jobs ------------------------------------------------------------------------------------


# The seed's due items (see seed.py): tokens 1..tok_due past expiry, sessions 1..sess_idle open.
def seeded_counts():
    from tokens.models import AccessToken

    users = _scalar("SELECT count(*) FROM accounts_user WHERE username <> 'scale_admin'")
    scale = users / 200_000
    from bench.scale.seed import counts

    del AccessToken
    return counts(scale)


def _scalar(sql: str, params=()):
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchone()[0]


def _exec(sql: str, params=()) -> None:
    with connection.cursor() as cur:
        cur.execute(sql, params)


def reset_for(job: str, c: dict) -> None:
    """Put back the seeded due items of `job`."""
    if job in ("expire tokens",):
        _exec("UPDATE tokens_accesstoken SET expired_at = NULL WHERE id <= %s", [c["tok_due"]])
        # In production tokens fall due by time passing: no fresh dead row versions to walk.
        _exec("VACUUM ANALYZE tokens_accesstoken")
    elif job in ("token expiring soon", "low balance"):
        _exec("DELETE FROM notifications_notification")
        _exec("DELETE FROM webhooks_webhookattempt")
        _exec("DELETE FROM webhooks_webhookdelivery")
        if job == "token expiring soon":  # the watermark of announced expiries
            _exec(
                "UPDATE tokens_accesstoken SET expiring_notified_for = NULL WHERE expiring_notified_for IS NOT NULL"
            )
            _exec("VACUUM ANALYZE tokens_accesstoken")
        # As in production, where the keys are new: no dead index entries of the same keys
        # (each insert would visit them in the unique check).
        _exec("VACUUM ANALYZE notifications_notification")
    elif job in ("close idle sessions",):
        _exec(
            "UPDATE proxy_proxysession SET ended_at = NULL, last_seen = now() - interval '10 minutes' "
            "WHERE id <= %s",
            [c["sess_idle"]],
        )
    elif job == "flush counters":
        _exec(
            "UPDATE proxy_proxysession SET ended_at = NULL, last_seen = now() WHERE id <= %s",
            [c["sess_idle"]],
        )
        from proxy.state import get_state

        state = get_state()
        from zenzefi.kv import RedisKV, get_kv
        from zenzefi.kvkeys import proxy_counters_key

        kv = get_kv()
        keys = list(
            __import__("proxy.models", fromlist=["ProxySession"])
            .ProxySession.objects.filter(ended_at__isnull=True)
            .values_list("key", flat=True)
        )
        now = time.time()
        if isinstance(kv, RedisKV):
            pipe = kv.client.pipeline(transaction=False)
            for k in keys:
                pipe.hset(
                    kv.full_key(proxy_counters_key(k)), mapping={"n": 5000, "bi": 1, "bo": 2, "ls": now}
                )
            pipe.execute()
        state.mark_dirty(keys)  # as the proxy marks what it counts
    elif job == "audit retention":
        _exec(
            "INSERT INTO audit_auditlog (action, resource_type, resource_id, details, ip, user_agent, suspicious,"
            " created_at, actor_id) SELECT 'auth.login', 'user', a::text, '{}'::jsonb, NULL, '', false,"
            " now() - interval '40 days', NULL FROM generate_series(1, %s) a",
            [c["tok_due"]],
        )
    elif job == "webhook redelivery sweeper":
        _exec(
            "UPDATE webhooks_webhookdelivery SET created_at = now() - interval '10 minutes' "
            "WHERE status = 'pending'"
        )
    elif job == "email redelivery sweeper":
        _exec(
            "UPDATE notifications_notification SET created_at = now() - interval '15 minutes' "
            "WHERE email_status = 'pending'"
        )
    elif job == "auto-renewal":
        _exec("DELETE FROM renewals_tokenrenewal")


def jobs() -> list[tuple[str, object]]:
    from analytics.gauges import gauges_refresh
    from audit.services import audit_retention_purge
    from notifications.services import (
        notification_emails_requeue_stuck,
        notify_expiring_tokens,
        notify_low_balance,
    )
    from proxy.services import sessions_close_idle, sessions_flush_counters
    from renewals.services import tokens_renew_due
    from tokens.services import tokens_expire_due
    from webhooks.services import webhook_deliveries_requeue_overdue

    def count(result):
        if isinstance(result, int):
            return result
        if isinstance(result, dict):
            return len(result)
        if hasattr(result, "renewed"):
            return len(result.renewed) + len(result.failed)
        return len(result)

    return [
        ("expire tokens", lambda: count(tokens_expire_due())),
        ("token expiring soon", lambda: count(notify_expiring_tokens())),
        ("low balance", lambda: count(notify_low_balance())),
        ("close idle sessions", lambda: count(sessions_close_idle())),
        ("flush counters", lambda: count(sessions_flush_counters())),
        ("audit retention", lambda: count(audit_retention_purge())),
        ("auto-renewal", lambda: count(tokens_renew_due())),
        ("webhook redelivery sweeper", lambda: count(webhook_deliveries_requeue_overdue())),
        ("email redelivery sweeper", lambda: count(notification_emails_requeue_stuck())),
        ("gauges", lambda: count(gauges_refresh())),
    ]


def run_child(fn) -> tuple[float, int, int, int]:
    """Run fn in a forked child: (ms, queries, items, peak RSS growth KB)."""
    import json

    connection.close()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            # A worker's connections are warm: open the database and broker connections first.
            connection.ensure_connection()
            from zenzefi.celery import app as celery_app

            with celery_app.producer_or_acquire() as producer:
                producer.connection.ensure_connection()
            from zenzefi.kv import get_kv

            get_kv().get("bench:warm-up")
            reset_hwm()
            start_rss, _ = rss_kb()
            with CaptureQueriesContext(connection) as ctx:
                started = time.perf_counter()
                items = fn()
                ms = (time.perf_counter() - started) * 1000
            _, hwm = rss_kb()
            db_ms = sum(float(q["time"]) for q in ctx.captured_queries) * 1000
            out = json.dumps([ms, len(ctx.captured_queries), items, hwm - start_rss, hwm, db_ms])
        except BaseException as exc:
            import traceback

            traceback.print_exc()
            out = json.dumps(["error", repr(exc)])
        os.write(w, out.encode())
        os.close(w)
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    result = json.loads(data)
    if result[0] == "error":
        raise SystemExit(f"job failed: {result[1]}")
    DB_MS.append(result.pop())
    return result


def clear_broker() -> None:
    from zenzefi.kv import RedisKV, get_kv

    kv = get_kv()
    if isinstance(kv, RedisKV):
        import redis

        redis.Redis.from_url(settings.CELERY_BROKER_URL).delete("celery")


VACUUM = {
    "expire tokens": ["tokens_accesstoken"],
    "token expiring soon": ["tokens_accesstoken", "notifications_notification"],
    "low balance": ["accounts_user", "notifications_notification"],
    "close idle sessions": ["proxy_proxysession"],
    "audit retention": ["audit_auditlog"],
}


def bench_jobs(only: str | None) -> None:
    c = seeded_counts()
    for name, fn in jobs():
        if only and only not in name:
            continue
        reset_for(name, c)
        connection.close()
        ms, q, items, grow, hwm = run_child(fn)
        row(
            "job",
            f"{name}: {items} due",
            ms,
            f"{q} queries, db {DB_MS[-1]:.0f} ms, peak RSS {hwm // 1024} MB (+{grow // 1024} MB)",
        )
        ms, q, items, grow, hwm = run_child(fn)
        row("job", f"{name}: nothing to do, right after ({items})", ms, f"{q} queries, db {DB_MS[-1]:.0f} ms")
        # Steady state: autovacuum has removed the rows' old versions from the indexes.
        for table in VACUUM.get(name, ()):
            with connection.cursor() as cur:
                cur.execute(f"VACUUM ANALYZE {table}")
        ms, q, items, grow, hwm = run_child(fn)
        row(
            "job", f"{name}: nothing to do, steady state ({items})", ms, f"{q} queries, db {DB_MS[-1]:.0f} ms"
        )
        clear_broker()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="admin,pages,staff,jobs")
    parser.add_argument("--model", help="only admin changelists whose app.model contains this")
    parser.add_argument("--job", help="only jobs whose name contains this")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    parts = args.only.split(",")
    print(f"database {connection.settings_dict['NAME']}", flush=True)
    if "admin" in parts:
        bench_admin(args.repeat, args.model)
    if "pages" in parts:
        bench_pages(args.repeat)
    if "staff" in parts:
        bench_staff(args.repeat)
    if "jobs" in parts:
        bench_jobs(args.job)
    print("\n| section | what | time | notes |\n| --- | --- | ---: | --- |")
    for section, what, ms, extra in ROWS:
        print(f"| {section} | {what} | {ms} | {extra} |")


if __name__ == "__main__":
    main()
