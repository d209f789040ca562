import os
with open("out.tmp", "w") as f:
    f.write(open("in.txt").read().upper())
os.replace("out.tmp", "out.txt")
