"""``python -m helppet_recordings.cli``: the same as the ``helppet-recordings`` command."""

from helppet_recordings.cli import main

main()
