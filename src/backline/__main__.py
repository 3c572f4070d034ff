"""`python -m backline` and the `backline` script run the command line.

The script's entry is `run`, here, rather than `backline.cli:main`: each worker of `backline
serve --workers N` is a spawned process that imports the script again, and this module imports
neither Typer nor the commands (some 1.4 MiB a worker would hold for nothing).
"""


def run() -> None:
    from backline.cli import main

    main()


if __name__ == "__main__":
    run()
