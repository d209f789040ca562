"""Packages roar's three build products into a wheel.

`roar`, `roar-collector` and `libroar.so` (`libroar.dylib` on macOS) must
land in one directory, because `roar` finds the other two next to itself.
Installed as data files under `bin/`, they end up in the environment's
bin/ (the venv's, or ~/.local/bin with --user), which is on PATH once the
environment is active. maturin and setuptools-rust package one crate's
binaries or a Python extension; roar is three crates and a plain C-ABI
library, so a small build step calling cargo is the simpler fit.

ROAR_PREBUILT=DIR skips cargo and packages the files already in DIR (CI
uses it to package the binaries it has just built and tested).
"""

import os
import platform
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build import build
from wheel.bdist_wheel import bdist_wheel

HERE = os.path.dirname(os.path.abspath(__file__))
SHIM = "libroar.dylib" if platform.system() == "Darwin" else "libroar.so"
PROGRAMS = ["roar", "roar-collector", SHIM]


class build_roar(build):
    """Builds the binaries with cargo (release) and stages them as data files."""

    def run(self):
        prebuilt = os.environ.get("ROAR_PREBUILT")
        if prebuilt:
            source = prebuilt
        else:
            subprocess.check_call(
                ["cargo", "build", "--release", "--locked", "-p", "roar-cli", "-p", "roar-collector", "-p", "roar-shim"],
                cwd=HERE,
            )
            source = os.path.join(HERE, "target", "release")
        staged = os.path.join(self.build_base, "roar-bin")
        os.makedirs(staged, exist_ok=True)
        files = []
        for name in PROGRAMS:
            src = os.path.join(source, name)
            if not os.path.isfile(src):
                raise SystemExit(f"roar: {src} was not built")
            dst = os.path.join(staged, name)
            shutil.copy2(src, dst)
            os.chmod(dst, 0o755)
            files.append(dst)
        self.distribution.data_files = [("bin", files)]
        super().run()


class platform_wheel(bdist_wheel):
    """The wheel holds native programs: tied to this platform, any Python."""

    def finalize_options(self):
        super().finalize_options()
        self.root_is_pure = False

    def get_tag(self):
        _, _, plat = super().get_tag()
        return "py3", "none", plat


setup(
    packages=[],
    py_modules=[],
    cmdclass={"build": build_roar, "bdist_wheel": platform_wheel},
)
