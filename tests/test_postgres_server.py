"""The test PostgreSQL server is real: a fresh database accepts SQL over TCP on loopback."""

from __future__ import annotations

import psycopg2


def test_fresh_database_is_real_and_empty(postgres_url: str) -> None:
    assert "@127.0.0.1:" in postgres_url or "@localhost:" in postgres_url
    con = psycopg2.connect(postgres_url)
    try:
        with con.cursor() as cur:
            cur.execute("SELECT count(*) FROM information_schema.tables "
                        "WHERE table_schema = 'public'")
            assert cur.fetchone() == (0,)
            cur.execute("CREATE TABLE t (x numeric)")
            cur.execute("INSERT INTO t VALUES (18446744073709551615)")
            cur.execute("SELECT x::text FROM t")
            assert cur.fetchone() == ("18446744073709551615",)
    finally:
        con.close()
