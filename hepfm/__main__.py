"""``python -m hepfm``: the command line where the ``hepfm`` script is not installed."""

from hepfm.cli import main

main()
