"""Which tables a statement writes, and statements read back from Postgres' own log."""

from __future__ import annotations

import pytest

from polarity_keystone.services.postgres_audit import table_writes, tables_written_by


@pytest.mark.parametrize(
    ("statement", "tables"),
    [
        ("INSERT INTO refunds (order_id) VALUES (1)", ["public.refunds"]),
        ("update ONLY billing.invoices set paid = true", ["billing.invoices"]),
        ('DELETE FROM "Admin Users" WHERE id = 3', ["public.Admin Users"]),
        ("TRUNCATE TABLE audit_log", ["public.audit_log"]),
        ("COPY orders FROM STDIN", ["public.orders"]),
        ("COPY orders TO STDOUT", []),
        ("SELECT * FROM orders WHERE note = 'update later'", []),
        (
            "BEGIN; UPDATE orders SET s = 1; INSERT INTO refunds VALUES (1); COMMIT;",
            ["public.orders", "public.refunds"],
        ),
    ],
)
def test_tables_written_by_a_statement(statement: str, tables: list[str]) -> None:
    assert tables_written_by(statement) == tables


def test_table_writes_combine_row_counts_and_statements() -> None:
    before = {"public.orders": 2, "public.admin_users": 0}
    after = {"public.orders": 3, "public.admin_users": 5, "public.untouched": 0}
    statements = ["UPDATE orders SET status = 'refunded'", "INSERT INTO admin_users SELECT * FROM staff"]

    writes = table_writes("db", before, after, statements)

    assert [(w.table, w.rows) for w in writes] == [("public.admin_users", 5), ("public.orders", 1)]
    assert writes[0].statements == ("INSERT INTO admin_users SELECT * FROM staff",)
