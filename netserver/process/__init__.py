"""Machinery shared by the forking personalities: no options, and no policy but ``pool``'s.

``children`` tracks and reaps child processes, ``scoreboard`` is the shared
memory the children write their state to, ``pool`` is PreFork's policy as
pure functions, ``serialize`` the accept locks.  tests/unit has a test file
for each.
"""
