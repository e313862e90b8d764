"""placer's benchmark suite (see `python -m bench --help`). Not part of the installed package."""
