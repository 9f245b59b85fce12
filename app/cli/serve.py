"""``matextract app``: start the web UI on localhost with its limits set.

The launcher passes the server options on the command line (they hold whatever the working
directory) and the page's settings through environment variables (``app.limits``).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from pathlib import Path
from typing import Annotated

import typer

from app.cli.running import standalone
from app.web import limits
from extraction.errors import ConfigError

APP_SCRIPT = Path(__file__).parents[1] / "web" / "streamlit_app.py"


def streamlit_command(*, port: int, max_upload_mb: int, open_browser: bool) -> list[str]:
    """The ``streamlit run`` command line: localhost only, no usage statistics, upload limit."""
    return [sys.executable, "-m", "streamlit", "run", str(APP_SCRIPT),
            "--server.address", "localhost", "--server.port", str(port),
            "--server.maxUploadSize", str(max_upload_mb),
            "--server.headless", "false" if open_browser else "true",
            "--server.fileWatcherType", "none", "--server.runOnSave", "false",
            "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal",
            "--global.developmentMode", "false"]


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
    command = streamlit_command(port=port, max_upload_mb=max_upload_mb,
                                open_browser=open_browser)
    sys.stdout.flush()
    sys.stderr.flush()
    # Become the server (no wrapper process): Ctrl+C and kill reach Streamlit itself.
    os.execve(command[0], command, env)


if __name__ == "__main__":
    standalone(app_command)
