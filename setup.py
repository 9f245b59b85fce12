"""Package discovery lives here (pyproject.toml holds everything else) because the bundled
``data/`` folder is installed under another name: ``matextract_data``. A top-level package
called ``data`` would clash with other projects in site-packages."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["extraction*", "finetune*", "eval*", "app*", "bench*"])
    + ["matextract_data"],
    package_dir={"matextract_data": "data"},
)
