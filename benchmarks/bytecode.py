"""Write netserver's and compat's bytecode before anything is measured, as ``pip install`` does.

Under ``PYTHONDONTWRITEBYTECODE`` (which some environments set) every server
start would otherwise compile from source each module changed since its
``.pyc`` was written: about 40 ms of start-up on the benchmark's box, and a
heap swollen by the compiler's leftovers, which every fork then copies (the
fork-per-connection rows measured that, not the server).
"""

import compileall
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def compile_bytecode() -> None:
    for package in ("netserver", "compat"):
        compileall.compile_dir(os.path.join(ROOT, package), quiet=1)
