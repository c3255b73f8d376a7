"""``python -m segprep`` runs the command line."""

from segprep.cli.main import main

if __name__ == "__main__":
    main()
