"""Step 2: fit y = a*x + b by least squares; save the model with pickle."""
import csv
import pickle

with open("data.csv", newline="") as f:
    rows = [(float(r["x"]), float(r["y"])) for r in csv.DictReader(f)]
n = len(rows)
mx = sum(x for x, _ in rows) / n
my = sum(y for _, y in rows) / n
a = sum((x - mx) * (y - my) for x, y in rows) / sum((x - mx) ** 2 for x, _ in rows)
b = my - a * mx
with open("model.pkl", "wb") as f:
    pickle.dump({"a": a, "b": b}, f)
print(f"trained: y = {a:.3f} x + {b:.3f}")
