"""`python -m modelsat.cli ...` (and `accelerate launch -m modelsat.cli train ...`): the `modelsat` command."""

from modelsat.cli import main

main()
