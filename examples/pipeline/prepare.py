"""Step 1: write a small, deterministic data set as CSV."""
import csv
import random

rng = random.Random(42)
with open("data.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["x", "y"])
    for _ in range(200):
        x = rng.uniform(0, 10)
        w.writerow([f"{x:.4f}", f"{3.0 * x + 1.0 + rng.gauss(0, 0.5):.4f}"])
print("wrote data.csv")
