# ruff: noqa: E501, S608
"""Seed a scale database with SQL (generate_series), fast: LARGE (200 000 users) in minutes.

    python bench/scale/seed.py --size small|large [--database zz_scale_small] [--keep]

Creates (drops first unless --keep and it exists) the database, migrates it with manage.py, then
fills it with set-based INSERTs. The data satisfies the ledger invariants the pages rely on: each
user's balance equals the sum of their transactions, `balance_after` is the running total, a token
has `expires_at` iff `activated_at`, a session's user is its token's user. `reset` (see reset.sql
in this file: RESET_SQL) puts the jobs' due items back so the benchmark can run again.

Sizes (LARGE; SMALL is 1/100): 200 000 users, 2 000 000 transactions (200 000 on the heavy
customer, user id 1, username "heavy", who also referred 10 % of all users), 500 000 tokens
(50 000 past expiry and not yet marked, 50 000 expiring within 24 h, 1/20 of those with
auto_renew), 2 000 000 proxy sessions (5 000 open and idle), 3 000 000 audit rows (half older
than 30 days), 100 000 payments, 10 % of users below the low-balance threshold, one webhook
endpoint (token.expired/token.expiring/balance.low) per 100 users.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
SIZES = {
    "large": 1.0,
    "small": 0.01,
}
BASE = {
    "users": 200_000,
    "heavy_tx": 200_000,
    "tx": 2_000_000,
    "tokens": 500_000,
    "tok_due": 50_000,
    "tok_expiring": 50_000,
    "sessions": 2_000_000,
    "sess_idle": 5_000,
    "audit": 3_000_000,
    "payments": 100_000,
}


def counts(scale: float) -> dict[str, int]:
    return {k: max(1, int(v * scale)) for k, v in BASE.items()}


def seed_sql(c: dict[str, int]) -> list[tuple[str, str]]:
    u = c["users"]
    other_tx_per_user = max(1, (c["tx"] - c["heavy_tx"]) // max(1, u - 1))
    t = c["tokens"]
    due, expiring = c["tok_due"], c["tok_expiring"]
    return [
        (
            "users",
            f"""
            INSERT INTO accounts_user (id, password, last_login, is_superuser, username, is_staff, is_active,
                date_joined, email, full_name, balance, referral_code, referral_bonus_earned, tier, language,
                referred_by_id, auto_renew_min_balance, notify_low_balance, notify_payment, notify_renewal,
                notify_token_expiring)
            SELECT i, '!unusable', NULL, false,
                   CASE WHEN i = 1 THEN 'heavy' ELSE 'user' || i END, false, true,
                   now() - (i % 720) * interval '12 hours' - i * interval '1 second',
                   CASE WHEN i = 1 THEN 'heavy@example.com' ELSE 'user' || i || '@example.com' END,
                   'Customer ' || i,
                   CASE WHEN i = 1 THEN {c["heavy_tx"]} * 10.00
                        WHEN i % 10 = 0 THEN {other_tx_per_user} * 0.50
                        ELSE {other_tx_per_user} * 10.00 END,
                   'R' || lpad(i::text, 11, '0'), 0, 'free', CASE WHEN i % 3 = 0 THEN 'en' ELSE 'ru' END,
                   CASE WHEN i > 1 AND i % 10 = 5 THEN 1 ELSE NULL END, 0, true, true, true, true
            FROM generate_series(1, {u}) AS i
            """,
        ),
        (
            "transactions (heavy customer)",
            f"""
            INSERT INTO currency_transaction (amount, balance_after, type, description, reference, created_at, user_id)
            SELECT 10.00, n * 10.00, 'DEPOSIT', 'Top-up', 'seed-h' || n,
                   now() - interval '400 days' + n * interval '2 minutes', 1
            FROM generate_series(1, {c["heavy_tx"]}) AS n
            """,
        ),
        (
            "transactions (others)",
            f"""
            INSERT INTO currency_transaction (amount, balance_after, type, description, reference, created_at, user_id)
            SELECT a, n * a, 'DEPOSIT', 'Top-up', 'seed-' || i || '-' || n,
                   now() - (400 - n * 30) * interval '1 day' - (i % 86400) * interval '1 second', i
            FROM generate_series(2, {u}) AS i,
                 LATERAL (SELECT CASE WHEN i % 10 = 0 THEN 0.50 ELSE 10.00 END AS a) AS amt,
                 generate_series(1, {other_tx_per_user}) AS n
            """,
        ),
        (
            "tokens",
            # k < due: past expiry, not marked; k < due+expiring: expiring within 24 h (1 in 20 with
            # auto_renew); then 1/2 expired and marked, 1/4 never activated, 1/4 revoked.
            f"""
            INSERT INTO tokens_accesstoken (id, digest, prefix, duration_hours, scope, cost, created_at,
                activated_at, expires_at, revoked_at, refund_amount, expired_at, auto_renew, bundle_purchase, user_id)
            SELECT k + 1, d, left(d, 8), 24, CASE WHEN k % 7 = 0 THEN 'certificates_only' ELSE 'full' END, 18.00,
                   coalesce(act - interval '1 hour', now() - (k % 300) * interval '1 day'), act, act + interval '24 hours',
                   CASE WHEN cat = 'revoked' THEN act + interval '2 hours' END,
                   CASE WHEN cat = 'revoked' THEN 0.00 END,
                   CASE WHEN cat = 'marked' THEN act + interval '24 hours' END,
                   cat = 'expiring' AND k % 20 = 0, '', (k % {u}) + 1
            FROM (
                SELECT k, md5('tok' || k) || md5('tik' || k) AS d,
                       CASE WHEN k < {due} THEN 'due' WHEN k < {due + expiring} THEN 'expiring'
                            WHEN k % 4 < 2 THEN 'marked' WHEN k % 4 = 2 THEN 'fresh' ELSE 'revoked' END AS cat
                FROM generate_series(0, {t - 1}) AS k
            ) s,
            LATERAL (SELECT CASE
                WHEN cat = 'due' THEN now() - interval '25 hours' - (k % 3600) * interval '1 second'
                WHEN cat = 'expiring' THEN now() - interval '24 hours'
                     + ((k - {due}) * 86000.0 / {expiring}) * interval '1 second' + interval '5 minutes'
                WHEN cat = 'fresh' THEN NULL
                ELSE now() - interval '30 days' - (k % 300) * interval '1 day' END AS act) a
            """,
        ),
        (
            "proxy sessions",
            f"""
            INSERT INTO proxy_proxysession (key, device_id, ip, user_agent, started_at, last_seen, ended_at,
                request_count, bytes_in, bytes_out, token_id, user_id)
            SELECT md5('s' || j), 'device-' || (j % 50000), ('10.' || (j % 250) || '.' || (j / 250 % 250) || '.1')::inet,
                   'ZenzefiClient/1.0', st, st + interval '20 minutes',
                   CASE WHEN j < {c["sess_idle"]} THEN NULL ELSE st + interval '25 minutes' END,
                   100 + j % 900, 1000 * (j % 97), 50000 * (j % 89), tok, ((tok - 1) % {u}) + 1
            FROM generate_series(0, {c["sessions"] - 1}) AS j,
                 LATERAL (SELECT ({due} + (j % {expiring})) + 1 AS tok) AS tk,
                 LATERAL (SELECT CASE WHEN j < {c["sess_idle"]} THEN now() - interval '30 minutes'
                                      ELSE now() - interval '1 hour' - j * interval '15 seconds' END AS st) AS s
            """,
        ),
        (
            "audit",
            f"""
            INSERT INTO audit_auditlog (action, resource_type, resource_id, details, ip, user_agent, suspicious,
                created_at, actor_id)
            SELECT (ARRAY['auth.login','token.purchase','balance.change','token.activate','auth.login_failed',
                          'proxy.device_conflict'])[1 + a % 6],
                   (ARRAY['user','token','transaction'])[1 + a % 3], (a % 500000)::text, '{{}}'::jsonb,
                   ('192.168.' || (a % 250) || '.' || (a / 250 % 250))::inet, 'Mozilla/5.0', a % 6 = 5,
                   now() - a * ({60 * 86400 * 1.0 / c["audit"]}) * interval '1 second',
                   (a % {u}) + 1
            FROM generate_series(0, {c["audit"] - 1}) AS a
            """,
        ),
        (
            "payments",
            f"""
            INSERT INTO payments_payment (uid, provider, provider_payment_id, amount, currency, original_amount,
                exchange_rate, status, checkout_url, created_at, completed_at, deposit_id, user_id)
            SELECT md5('p' || p)::uuid, 'mock', 'mock_' || p, 100.00, 'ZNC', 100.00, 1,
                   CASE WHEN p % 10 = 0 THEN 'canceled' WHEN p % 10 = 1 THEN 'pending' ELSE 'succeeded' END,
                   '', now() - p * interval '5 minutes',
                   CASE WHEN p % 10 > 1 THEN now() - p * interval '5 minutes' END, NULL, (p % {u}) + 1
            FROM generate_series(0, {c["payments"] - 1}) AS p
            """,
        ),
        (
            "webhook endpoints",
            f"""
            INSERT INTO webhooks_webhookendpoint (uid, url, events, secret_salt, is_active, created_at,
                consecutive_failures, disabled_reason, user_id)
            SELECT md5('w' || i)::uuid, 'http://127.0.0.1:9/hook',
                   '["token.expired", "token.expiring", "balance.low"]'::jsonb, md5('salt' || i), true, now(),
                   0, '', i
            FROM generate_series(1, {u}, 100) AS i
            """,
        ),
        (
            "sequences",
            """
            SELECT setval(pg_get_serial_sequence('accounts_user', 'id'), (SELECT max(id) FROM accounts_user));
            SELECT setval(pg_get_serial_sequence('tokens_accesstoken', 'id'), (SELECT max(id) FROM tokens_accesstoken));
            """,
        ),
        ("vacuum analyze", "VACUUM ANALYZE"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", choices=SIZES, default="small")
    parser.add_argument("--database", help="database name (default zz_scale_<size>)")
    parser.add_argument("--host-url", default="postgres://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    db = args.database or f"zz_scale_{args.size}"
    admin_url = f"{args.host_url}/postgres"
    url = f"{args.host_url}/{db}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db}"')
    env = {**os.environ, "DATABASE_URL": url, "DEBUG": os.environ.get("DEBUG", "true")}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    c = counts(SIZES[args.size])
    with psycopg.connect(url, autocommit=True) as conn:
        for label, sql in seed_sql(c):
            started = time.perf_counter()
            conn.execute(sql)
            print(f"{label:40s} {time.perf_counter() - started:8.1f} s", flush=True)
    print(f"seeded {db}: {c}")


if __name__ == "__main__":
    main()
