"""Packages found automatically under the repository's three source folders, all installed under
the one import name `foley`: foley/ as `foley`, stages/ as `foley.stages`, configs/ as
`foley.configs` (pyproject.toml holds everything else)."""

from setuptools import find_packages, setup

SOURCE_FOLDERS = {"foley": "foley", "foley.stages": "stages", "foley.configs": "configs"}


def packages() -> list[str]:
    found = []
    for name, folder in SOURCE_FOLDERS.items():
        found += [name] + [f"{name}.{sub}" for sub in find_packages(folder)]
    return found


setup(packages=packages(), package_dir=SOURCE_FOLDERS)
