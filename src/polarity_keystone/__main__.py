"""`python -m polarity_keystone …` is the `ks` command, for environments where scripts are not on PATH."""

from .cli import run

run()
