"""Drop-in modules named like the standard library's, backed by netserver."""
