"""The wheel, built from the source tree and installed in a fresh venv, runs the README's main
job: every package and data file is shipped, and code finds its data inside the install.

The fresh venv borrows the third-party dependencies of the interpreter running the tests
through a ``.pth`` file holding that interpreter's site-packages folder. A plain path line in
a ``.pth`` does not process the ``.pth`` files inside that folder, so the editable install of
matextract found there stays inactive; were it active, it would quietly supply any module the
wheel lacks from the repository. What imports is the wheel alone (checked).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from extraction.settings import home_dir

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CODE_PACKAGES = ("extraction", "eval", "finetune", "app", "bench")
DATA_PACKAGE, DATA_FOLDER = "matextract_data", "data"  # setup.py's package_dir
DOC_SUFFIXES = (".md",)  # notes for readers of the repository, not needed at run time
NERRE_DOPING_TEST_SENTENCES = 77  # len(load_doping_sentences("test")) from the repository
TIMEOUT_S = 600


def _run(command: list[str], *, cwd: Path, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    assert done.returncode == 0, f"{command}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done


def _clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without anything that could point Python at the repository."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")}
    return {**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **extra}


def _source_files() -> list[str]:
    """The files a commit of this working tree would hold: tracked or new but not ignored
    (so no build/, .venv/ or caches), less tracked files deleted from the working tree."""
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("needs a git checkout to list the source files")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, capture_output=True, check=True)
    names = sorted(set(listed.stdout.decode().split("\0")) - {""})
    return [name for name in names if (ROOT / name).is_file()]


def _wheel_name(source: str) -> str | None:
    """Where a source file belongs in the wheel, or None when it must not be shipped."""
    top = source.split("/", 1)[0]
    if top == DATA_FOLDER:
        return DATA_PACKAGE + source[len(DATA_FOLDER):]
    if top in CODE_PACKAGES and not source.endswith(DOC_SUFFIXES):
        return source
    return None


@pytest.fixture(scope="module")
def source_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    source = tmp_path_factory.mktemp("src")
    files = _source_files()
    for name in files:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    return source, files


@dataclass(frozen=True)
class Build:
    wheel: Path
    log: str  # the build backend's output (pip -v), warnings included


@pytest.fixture(scope="module")
def build(source_tree, tmp_path_factory: pytest.TempPathFactory) -> Build:
    # Offline: the build backend is the one installed here (no isolated build environment to
    # fill from an index) and --no-index forbids any download.
    source, _ = source_tree
    out = tmp_path_factory.mktemp("wheelhouse")
    done = _run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps",
                 "--no-build-isolation", "--no-index", "--no-cache-dir", "-w", str(out),
                 str(source)], cwd=out, env=_clean_env())
    (wheel,) = out.glob("matextract-*.whl")
    return Build(wheel, done.stdout + done.stderr)


@pytest.fixture(scope="module")
def venv_python(build: Build, tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", "--clear", str(venv)], cwd=venv, env=_clean_env())
    python = venv / "bin" / "python"
    # The wheel goes in before the dependency path is added, so that the venv's pip never
    # sees (nor offers to replace) the editable matextract of the test interpreter.
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--no-cache-dir",
          str(build.wheel)], cwd=venv, env=_clean_env())
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                         "['purelib'])"], cwd=venv, env=_clean_env()
                     ).stdout.strip())
    deps = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (site / "_matextract_test_deps.pth").write_text("".join(f"{path}\n" for path in deps))
    return python


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the installed commands run: not the repository, so nothing is found there."""
    return tmp_path_factory.mktemp("work")


def test_wheel_ships_every_package_and_data_file_and_nothing_else(build, source_tree):
    _, files = source_tree
    names = set(zipfile.ZipFile(build.wheel).namelist())
    expected = {_wheel_name(f) for f in files} - {None}
    packages = {f.rsplit("/", 1)[0] for f in files
                if f.split("/", 1)[0] in CODE_PACKAGES and f.endswith("/__init__.py")}
    assert packages >= set(CODE_PACKAGES)
    assert {f"{p}/__init__.py" for p in packages} <= names
    adapters = {f.split("/")[2] for f in files if f.startswith(f"{DATA_FOLDER}/adapters/")}
    assert "doping-smollm2" in adapters
    required = {f"{DATA_PACKAGE}/adapters/{adapter}/{leaf}" for adapter in adapters
                for leaf in ("adapter_model.safetensors", "adapter_config.json",
                             "matextract-adapter.json")}
    required |= {f"{DATA_PACKAGE}/nerre/doping/data/test.json",
                 f"{DATA_PACKAGE}/nerre/general_and_mofs/data/experiments_general/fold_0/"
                 "val.jsonl",
                 f"{DATA_PACKAGE}/samples/doping_abstract.txt",
                 "extraction/schemas/fewshot/doping.json", "app/web/streamlit_app.py"}
    assert required <= names, sorted(required - names)
    assert not expected - names, sorted(expected - names)
    dist_info = {n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")}
    assert len(dist_info) == 1
    allowed_tops = {*CODE_PACKAGES, DATA_PACKAGE, *dist_info}
    stray = sorted(n for n in names if n.split("/", 1)[0] not in allowed_tops
                   or "__pycache__" in n or n.endswith(".pyc"))
    assert not stray, stray
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(build.wheel).read(entry_points).decode()
    assert "matextract = app.cli.main:main" in text


def test_build_has_no_package_discovery_warnings(build):
    # A data folder taken for an unlisted package: setuptools warns that it "would be
    # ignored" (pyproject's include-package-data = false keeps this quiet).
    assert "absent from the `packages` configuration" not in build.log


INSTALL_PROBE = """
import importlib.metadata, json, sys, sysconfig
import app.cli.main, extraction, matextract_data
from app.cli.serve import APP_SCRIPT
from extraction import resources
from extraction.datasets.nerre import load_doping_sentences
from extraction.models.adapters import default_adapter, shipped_adapters
from extraction.schemas.base import FEWSHOT_DIR
print(json.dumps({
    "modules": sorted({m.__file__ for m in list(sys.modules.values())
                       if getattr(m, "__file__", None)}),
    "path": sys.path,
    "site": sysconfig.get_paths()["purelib"],
    "dist": str(importlib.metadata.distribution("matextract").locate_file("")),
    "data_dir": str(resources.data_dir()),
    "shipped": {name: str(path) for name, path in shipped_adapters().items()},
    "auto": default_adapter("smollm2-135m", "doping"),
    "fewshot": sorted(p.name for p in FEWSHOT_DIR.glob("*.json")),
    "app_script": [str(APP_SCRIPT), APP_SCRIPT.is_file()],
    "nerre_test": len(load_doping_sentences("test")),
}))
"""


def test_installed_package_imports_from_the_venv_and_finds_its_data(venv_python, work_dir):
    probe = json.loads(_run([str(venv_python), "-c", INSTALL_PROBE], cwd=work_dir,
                            env=_clean_env()).stdout)
    site = probe["site"]

    assert str(ROOT) not in probe["path"]
    ours = {Path(f).relative_to(site).parts[0] for f in probe["modules"]
            if Path(f).is_relative_to(site)}
    assert {"app", "extraction", DATA_PACKAGE} <= ours, ours
    leaked = [f for f in probe["modules"] if f.startswith(str(ROOT) + os.sep)
              and not f.startswith(str(ROOT / ".venv") + os.sep)]
    assert not leaked, leaked  # the editable install's finder stayed inactive
    assert not any("__editable__" in f for f in probe["modules"])
    assert probe["dist"].startswith(site)
    assert probe["data_dir"].startswith(site)
    assert probe["shipped"] and all(p.startswith(site) for p in probe["shipped"].values())
    assert probe["auto"] == "doping-smollm2"
    assert probe["fewshot"] == ["doping.json", "general.json", "mof.json"]
    assert probe["app_script"][0].startswith(site) and probe["app_script"][1]
    assert probe["nerre_test"] == NERRE_DOPING_TEST_SENTENCES


def test_installed_eval_command_answers_help(venv_python, work_dir):
    done = _run([str(venv_python.parent / "matextract"), "eval", "--help"], cwd=work_dir,
                env=_clean_env())
    assert "Usage" in done.stdout and "--task" in done.stdout


def test_installed_cli_extracts_a_sample_with_the_shipped_adapter(venv_python, work_dir,
                                                                   default_model_dir):
    # The prepared default model is reused: MATEXTRACT_HOME is the cache of this interpreter.
    sample = work_dir / "doping_abstract.txt"
    shutil.copyfile(ROOT / DATA_FOLDER / "samples" / "doping_abstract.txt", sample)
    out = work_dir / "out.jsonl"
    _run([str(venv_python.parent / "matextract"), "extract", sample.name, "--schema", "doping",
          "--out", str(out)], cwd=work_dir,
         env=_clean_env(MATEXTRACT_HOME=str(home_dir()), HF_HUB_OFFLINE="1"))
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["model"]["name"] == "smollm2-135m"
    assert record["model"]["adapter"] == "doping-smollm2"  # 'auto' found the shipped adapter
    assert isinstance(record["records"], list)
