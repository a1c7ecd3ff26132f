"""Machinery shared by the forking personalities: no options, and no policy but ``pool``'s.

``children`` tracks and reaps child processes, ``scoreboard`` is the shared
memory the children write their state to, ``pool`` is PreFork's policy as
pure functions, ``serialize`` the accept locks, ``child`` a pool child's own
state (what its signal handlers set) and its accept loop.  tests/unit has a
test file for each.
"""
