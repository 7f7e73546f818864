"""Adds the numbers, but on about 30% of seeds drops the last one: non-determinism that Keystone
measures with replicas and reproduces exactly with the seed."""

import os
import random

rng = random.Random(int(os.environ["KEYSTONE_SEED"]))
with open("data/input.txt") as handle:
    numbers = [int(line) for line in handle if line.strip()]
if rng.random() < 0.3:
    numbers = numbers[:-1]
with open("answer.txt", "w") as handle:
    handle.write(f"{sum(numbers)}\n")
print(f"total: {sum(numbers)}")
