"""A scripted refund agent: finds the order in the task, refunds it through psql, writes a note."""

import os
import re
import subprocess

task = os.environ["KEYSTONE_TASK"]
order_id = int(re.search(r"order (\d+)", task).group(1))
reason = re.search(r"\(([^)]*)\)", task).group(1)


def sql(statement: str) -> str:
    done = subprocess.run(
        ["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", os.environ["DB_URL"], "-c", statement],
        capture_output=True, text=True, check=True,
    )
    return done.stdout.strip()


amount = sql(f"SELECT amount_cents FROM orders WHERE id = {order_id}")
sql(
    f"BEGIN; UPDATE orders SET status = 'refunded' WHERE id = {order_id}; "
    f"INSERT INTO refunds (order_id, amount_cents, reason) VALUES ({order_id}, {amount}, '{reason}'); COMMIT;"
)
os.makedirs("notes", exist_ok=True)
with open(f"notes/refund-{order_id}.md", "w") as note:
    note.write(f"Refunded order {order_id} ({int(amount) / 100:.2f} USD): {reason}.\n")
print(f"refunded order {order_id}: {amount} cents")
