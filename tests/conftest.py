"""Shared test set-up: make tests/support importable and the repo root first on sys.path."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "support"))
sys.path.insert(0, os.path.dirname(HERE))
