"""The distribution as a user gets it: a wheel built from the checkout, installed into fresh
virtual environments, used from a folder outside the checkout.

Slow (a wheel build and two venvs, about a minute; ``-m "not slow"`` skips it), and run by CI.
The installs take the exact versions of requirements.txt as constraints, so pip's cache makes them
quick and they match what the README's first command installs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from vtwait.server.settings import OPTIONS

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = {"vtwait": "vtwait.client.cli", "vtwait-server": "vtwait.server.cli"}
#: Optional libraries that a bare ``import vtwait`` must not load.
HEAVY = ("aiohttp", "tqdm", "flask", "werkzeug", "gevent", "gunicorn", "redis")
#: Top-level names of the checkout that must never be importable from site-packages.
STRAYS = ("client", "server", "bench", "benchmarks", "test_integration", "gunicorn.conf")

# One worker builds the wheel and the venvs for every test here (pytest-xdist, --dist loadgroup).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900), pytest.mark.xdist_group("install")]


def clean_env(venv_dir: Path | None = None) -> dict[str, str]:
    """The environment minus anything that would leak the checkout or settings into a child:
    no PYTHONPATH, no server or client settings; ``venv_dir``'s bin first on PATH."""
    names = {option.env for option in OPTIONS} | {"API_BASE_URL", "API_USERNAME", "API_PASSWORD"}
    env = {k: v for k, v in os.environ.items()
           if k not in names and k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    if venv_dir is not None:
        env["PATH"] = os.pathsep.join([str(venv_dir / "bin"), env.get("PATH", "")])
    return env


def run(command: list[str | Path], cwd: Path, venv_dir: Path | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Runs ``command`` to the end (bounded by ``timeout``), output captured."""
    return subprocess.run([str(part) for part in command], cwd=cwd, env=clean_env(venv_dir),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, check=False)


def make_venv(folder: Path, requirement: str) -> Path:
    """A fresh venv (no system site-packages) with ``requirement`` installed under the exact
    versions of requirements.txt."""
    venv.create(folder, with_pip=True, clear=True)
    done = run([folder / "bin" / "python", "-m", "pip", "install", "--quiet",
                "--constraint", ROOT / "requirements.txt", requirement], cwd=folder.parent)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return folder


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder outside the checkout, where the commands run."""
    return tmp_path_factory.mktemp("install")


@pytest.fixture(scope="module")
def wheel(work: Path) -> Path:
    """The wheel of a copy of the checkout holding only what a source tree needs to build it
    (pyproject.toml, README.md, vtwait/), so the build leaves the checkout untouched."""
    source = work / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "vtwait", source / "vtwait",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    done = run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                "--wheel-dir", work / "dist", source], cwd=work)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    (found,) = (work / "dist").glob("video_translation_wait-*.whl")
    return found


@pytest.fixture(scope="module")
def full_venv(work: Path, wheel: Path) -> Path:
    """``pip install 'video-translation-wait[all]'`` (from the wheel) into a fresh venv."""
    return make_venv(work / "venv-all", f"{wheel}[all]")


def test_wheel_holds_the_package_only(wheel: Path) -> None:
    """The wheel holds vtwait/ (with py.typed and openapi.yaml) and its metadata: no top-level
    client/server/bench module, no benchmarks or tests; it declares both console scripts and
    the ``packaging`` module gunicorn forgets."""
    import vtwait

    names = zipfile.ZipFile(wheel).namelist()
    info = f"video_translation_wait-{vtwait.__version__}.dist-info"
    assert {name.split("/", 1)[0] for name in names} == {"vtwait", info}
    assert {"vtwait/py.typed", "vtwait/server/openapi.yaml", "vtwait/__init__.py"} <= set(names)
    with zipfile.ZipFile(wheel) as archive:
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
        metadata = archive.read(f"{info}/METADATA").decode()
    for script, module in SCRIPTS.items():
        assert f"{script} = {module}:main" in entry_points
    assert re.search(r"^Requires-Dist: packaging.*extra == \"server\"", metadata, re.M), metadata
    assert "Requires-Python: >=3.11" in metadata


def test_import_vtwait_loads_no_optional_library(full_venv: Path, work: Path) -> None:
    """In the installed venv, from outside the checkout, ``import vtwait`` comes from
    site-packages and loads none of aiohttp, tqdm, flask (all installed there); the checkout's
    top-level scripts are not importable."""
    probe = ("import importlib.util, json, sys; import vtwait; print(json.dumps({"
             "'file': vtwait.__file__, "
             f"'heavy': sorted(m for m in {HEAVY!r} if m in sys.modules), "
             f"'strays': [m for m in {STRAYS!r} if importlib.util.find_spec(m)]}}))")
    done = run([full_venv / "bin" / "python", "-c", probe], cwd=work)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert Path(found["file"]).is_relative_to(full_venv), found
    assert found["heavy"] == [] and found["strays"] == [], found


def test_server_module_runs_from_the_install(full_venv: Path, work: Path) -> None:
    """``python -m vtwait.server --help`` works from the installed package."""
    done = run([full_venv / "bin" / "python", "-m", "vtwait.server", "--help"], cwd=work,
               timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "--port" in done.stdout


@pytest.fixture
def served(full_venv: Path, work: Path) -> Iterator[str]:
    """``vtwait-server --port 0`` from the venv, run outside the checkout; yields its URL."""
    process = subprocess.Popen(
        [str(full_venv / "bin" / "vtwait-server"), "--port", "0"], cwd=work,
        env=clean_env(full_venv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    urls: list[str] = []
    ready = threading.Event()

    def pump() -> None:  # reads the server's output for its whole life, so it never blocks
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            found = re.search(r"(https?://127\.0\.0\.1:\d+)", line)
            if found and not urls:
                urls.append(found.group(1))
                ready.set()
        ready.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        ready.wait(60)
        assert urls, "vtwait-server did not say where it listens:\n" + "".join(lines[-30:])
        yield urls[0]
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(timeout=15)
        reader.join(timeout=5)


def test_console_scripts_serve_and_wait(full_venv: Path, work: Path, served: str) -> None:
    """The installed ``vtwait`` command starts a job on the installed ``vtwait-server`` and
    waits until it is completed (exit code 0, the final status document on stdout)."""
    done = run([full_venv / "bin" / "vtwait", "--base-url", served, "--delay", "0.5",
                "--outcome", "completed", "--timeout", "60", "--json"], cwd=work,
               venv_dir=full_venv, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert json.loads(done.stdout)["result"] == "completed", done.stdout


def test_plain_install_is_a_working_client(wheel: Path, work: Path) -> None:
    """``pip install video-translation-wait`` without extras (requests, urllib3,
    standardwebhooks only) imports the sync client and runs ``vtwait --help``."""
    plain = make_venv(work / "venv-plain", str(wheel))
    done = run([plain / "bin" / "python", "-c",
                "from vtwait import VideoTranslationClient; print(VideoTranslationClient)"],
               cwd=work)
    assert done.returncode == 0, done.stderr[-3000:]
    done = run([plain / "bin" / "vtwait", "--help"], cwd=work, venv_dir=plain, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]


def test_an_outside_project_tests_its_client_with_the_pytest_plugin(full_venv: Path,
                                                                     work: Path) -> None:
    """A throw-away project outside the checkout, with pytest installed beside the package, runs
    its own suite on the ``vt_server`` fixture (found through the ``pytest11`` entry point): the
    complete example of docs/testing-your-client.md (a 1-hour job under virtual time among
    them), and a check that the plugin loaded nothing of the server into the pytest process."""
    done = run([full_venv / "bin" / "python", "-m", "pip", "install", "--quiet",
                "--constraint", ROOT / "requirements-dev.txt", "pytest"], cwd=work)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    project = work / "my-client"
    (project / "tests").mkdir(parents=True)
    (project / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    page = (ROOT / "docs" / "testing-your-client.md").read_text(encoding="utf-8")
    example = page.split("## A complete example", 1)[1].split("```python\n", 1)[1].split("```")[0]
    (project / "tests" / "test_my_client.py").write_text(example)
    (project / "tests" / "test_zz_light.py").write_text(
        "import sys\n\n\ndef test_the_plugin_loaded_nothing_of_the_server():\n"
        "    assert not {'flask', 'gevent', 'werkzeug'} & set(sys.modules)\n")
    done = run([full_venv / "bin" / "python", "-m", "pytest", "-q", "-p", "no:randomly"],
               cwd=project, venv_dir=full_venv, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "5 passed" in done.stdout, done.stdout[-2000:]
