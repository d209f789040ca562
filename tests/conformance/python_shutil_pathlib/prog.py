import shutil
from pathlib import Path
shutil.copy("in.txt", "copy.txt")
Path("text.txt").write_text(Path("in.txt").read_text() * 2)
