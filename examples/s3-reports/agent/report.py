"""Reads the day's orders from S3 and writes a per-customer revenue report back to S3 with boto3.

Debian's python3-boto3 predates AWS_ENDPOINT_URL, so the endpoint is passed explicitly from S3_URL
(Keystone sets both, plus test credentials and a region).
"""

import csv
import io
import os

import boto3

s3 = boto3.client("s3", endpoint_url=os.environ["S3_URL"])
body = s3.get_object(Bucket="reports", Key="inputs/orders.csv")["Body"].read().decode()
totals: dict[str, int] = {}
for row in csv.DictReader(io.StringIO(body)):
    totals[row["customer"]] = totals.get(row["customer"], 0) + int(row["amount_cents"])
lines = ["customer,total_cents"] + [f"{name},{cents}" for name, cents in sorted(totals.items())]
report = "\n".join(lines) + "\n"
s3.put_object(Bucket="reports", Key="out/revenue.csv", Body=report.encode(), ContentType="text/csv")
print(f"wrote s3://reports/out/revenue.csv ({len(totals)} customers)")
