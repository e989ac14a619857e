"""`python -m virnucpro` runs the command line."""

from virnucpro.cli.root import main

if __name__ == "__main__":
    main()
