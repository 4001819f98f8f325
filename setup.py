"""Build step (metadata is in pyproject.toml): the wheel carries the data `inferstream` reads.

A checkout keeps schemas/, models/<name>/<version>/ and ops/kafka/pom.xml at its root, where
the code, the tests and `python -m bench` find them. setuptools packages only files inside
packages, so build_py copies these into the built `pipeline` package as pipeline/_data/; the
installed code reads them from there (pipeline.config.DATA_ROOT). MANIFEST.in puts them in the
sdist, so a wheel built from it has them too. Editable installs read the checkout's own.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

# Files copied to pipeline/_data/, as globs relative to the source root; each must match.
DATA = ("schemas/*.avsc", "models/*/*/*", "ops/kafka/pom.xml")
TARGET = ("pipeline", "_data")


def data_files(root: Path) -> list[Path]:
    """The data files under `root`, relative to it; a SystemExit if a pattern matches none."""
    found = []
    for pattern in DATA:
        matches = [p for p in sorted(root.glob(pattern)) if p.is_file()]
        matches = [p for p in matches if "__pycache__" not in p.parts]
        if not matches:
            raise SystemExit(f"building inferstream: nothing matches {pattern} under {root}")
        found += [p.relative_to(root) for p in matches]
    return found


class BuildWithData(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's files in place
        root = Path(__file__).resolve().parent
        target = Path(self.build_lib, *TARGET)
        shutil.rmtree(target, ignore_errors=True)
        for rel in data_files(root):
            dest = target / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            self.copy_file(str(root / rel), str(dest))


setup(cmdclass={"build_py": BuildWithData})
