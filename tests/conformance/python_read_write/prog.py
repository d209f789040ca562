with open("in.csv") as f:
    rows = f.read().splitlines()
with open("out.csv", "w") as f:
    f.write("\n".join(reversed(rows)))
with open("log.txt", "a") as f:
    f.write("ran\n")
