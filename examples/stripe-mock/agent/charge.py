"""A scripted billing agent: reads the order and amount from the task, charges them through the
payments API (the spec's http_mock service) with urllib, and writes the receipt."""

import json
import os
import re
import urllib.request

task = os.environ["KEYSTONE_TASK"]
order_id = re.search(r"order (\d+)", task).group(1)
customer = re.search(r"customer (\w+)", task).group(1)
amount = round(float(re.search(r"([\d.]+) USD", task).group(1)) * 100)
api = os.environ["STRIPE_MOCK_URL"]

request = urllib.request.Request(
    f"{api}/v1/charges",
    data=json.dumps(
        {"amount": amount, "currency": "usd", "customer": customer, "metadata": {"order_id": order_id}}
    ).encode(),
    headers={"Content-Type": "application/json", "Idempotency-Key": f"order-{order_id}"},
    method="POST",
)
with urllib.request.urlopen(request, timeout=10) as response:
    charge = json.load(response)

os.makedirs("receipts", exist_ok=True)
with open(f"receipts/order-{order_id}.json", "w") as receipt:
    json.dump({"order_id": order_id, "charge_id": charge["id"], "amount_cents": amount}, receipt)
print(f"charged order {order_id}: {amount} cents, charge {charge['id']}")
