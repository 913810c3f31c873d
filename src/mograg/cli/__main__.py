"""`python -m mograg.cli`: the `mograg` command line."""

from mograg.cli.app import main

main()
