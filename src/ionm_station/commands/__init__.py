"""Sub-commands of ``ionm-station`` that live in their own modules (wired up in ``cli.py``)."""
