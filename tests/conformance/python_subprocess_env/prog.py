import subprocess
subprocess.run(["/bin/cp", "a.txt", "b.txt"], env={}, check=True)
subprocess.run(["/bin/sh", "-c", "cat b.txt > c.txt"], check=True)
