"""``python -m netserver`` is the ``netserver`` command."""

from .cli import main

if __name__ == "__main__":
    main()
