"""``matextract app``: start the web UI on localhost with its limits set.

The launcher passes the server options on the command line (they hold whatever the working
directory) and the page's settings through environment variables (``app.limits``).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from app.cli.running import standalone
from app.web import limits
from extraction.errors import ConfigError

APP_SCRIPT = Path(__file__).parents[1] / "web" / "streamlit_app.py"


def streamlit_command(*, port: int, max_upload_mb: int) -> list[str]:
    """The ``streamlit run`` command line: localhost only, no usage statistics, upload limit.

    Always headless: without it Streamlit's first run in a fresh home stops at an e-mail
    prompt on the terminal and serves nothing (``open_browser_when_up`` opens the tab).
    """
    return [sys.executable, "-m", "streamlit", "run", str(APP_SCRIPT),
            "--server.address", "localhost", "--server.port", str(port),
            "--server.maxUploadSize", str(max_upload_mb),
            "--server.headless", "true",
            "--server.fileWatcherType", "none", "--server.runOnSave", "false",
            "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal",
            "--global.developmentMode", "false"]


# Run detached, so that it outlives the exec into Streamlit: waits for the port, opens a tab.
_OPENER = """
import socket, sys, time, webbrowser
port = int(sys.argv[1])
for _ in range(240):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        time.sleep(0.5)
        continue
    webbrowser.open(f"http://localhost:{port}")
    break
"""


def open_browser_when_up(port: int) -> None:
    """Open a browser tab on the app once it listens (at most two minutes of waiting)."""
    subprocess.Popen([sys.executable, "-c", _OPENER, str(port)], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def app_command(
    port: Annotated[int, typer.Option(help="port on localhost")] = 8501,
    eval_dir: Annotated[Path | None, typer.Option(
        help=f"evaluation results shown on the results page (default: ./{limits.DEFAULT_EVAL_DIR})"
    )] = None,
    model: Annotated[str | None, typer.Option(
        help="model selected when the page opens: registry name or local model folder")] = None,
    corrections_dir: Annotated[Path | None, typer.Option(
        help=f"where corrections are saved (default: ./{limits.DEFAULT_CORRECTIONS_DIR})")] = None,
    max_upload_mb: Annotated[int, typer.Option(
        min=1, max=1024, help="largest file accepted by the upload box, in MB")]
    = limits.MAX_UPLOAD_MB,
    open_browser: Annotated[bool, typer.Option(help="open a browser tab")] = True,
) -> None:
    """Start the web UI on http://localhost:PORT (Ctrl+C stops it)."""
    if importlib.util.find_spec("streamlit") is None:
        raise ConfigError("the web UI needs Streamlit, which is not installed",
                          hint=f"{sys.executable} -m pip install -e '.[app]'")
    if not _port_free(port):
        raise ConfigError(f"port {port} on localhost is in use",
                          hint=f"pick another one: matextract app --port {port + 1}")
    env = dict(os.environ)
    env[limits.ENV_MAX_UPLOAD_MB] = str(max_upload_mb)
    for name, value in ((limits.ENV_EVAL_DIR, eval_dir), (limits.ENV_MODEL, model),
                        (limits.ENV_CORRECTIONS, corrections_dir)):
        if value is not None:
            env[name] = str(Path(value).expanduser().resolve()) if isinstance(value, Path) \
                else str(value)
    typer.echo(f"matextract app: http://localhost:{port}  (Ctrl+C stops it)", err=True)
    command = streamlit_command(port=port, max_upload_mb=max_upload_mb)
    if open_browser:
        open_browser_when_up(port)
    sys.stdout.flush()
    sys.stderr.flush()
    # Become the server (no wrapper process): Ctrl+C and kill reach Streamlit itself.
    os.execve(command[0], command, env)


if __name__ == "__main__":
    standalone(app_command)
