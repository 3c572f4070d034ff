"""`python -m backline` runs the command line."""

from backline.cli import main

main()
