"""Every top-level package is installed: `tricenter` runs from an installed console script,
outside the checkout, where a package left out of pyproject.toml cannot be imported."""
import fnmatch
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_top_level_package_is_in_the_install_list() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = sorted(p.parent.name for p in REPO.glob("*/__init__.py") if p.parent.name != "tests")
    missing = [p for p in packages if not any(fnmatch.fnmatch(p, pattern) for pattern in include)]
    assert missing == [], f"add to [tool.setuptools.packages.find] include in pyproject.toml: {missing}"
