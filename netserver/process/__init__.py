"""Machinery shared by the forking personalities: no policy, no options.

``children`` tracks and reaps child processes, ``scoreboard`` is the shared
memory the children write their state to, ``pool`` is PreFork's policy as
pure functions, ``serialize`` the accept locks, ``child`` what a new child
does first.
"""
