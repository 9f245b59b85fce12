"""``python -m app``: the ``matextract`` command."""

from app.cli.main import main

main()
