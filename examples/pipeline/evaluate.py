"""Step 3: score the model on the data; write metrics as JSON."""
import csv
import json
import pickle

with open("model.pkl", "rb") as f:
    model = pickle.load(f)
with open("data.csv", newline="") as f:
    rows = [(float(r["x"]), float(r["y"])) for r in csv.DictReader(f)]
mse = sum((model["a"] * x + model["b"] - y) ** 2 for x, y in rows) / len(rows)
with open("metrics.json", "w") as f:
    json.dump({"mse": round(mse, 6), "n": len(rows)}, f, indent=2)
print(f"mse = {mse:.4f}")
