"""'mod:callable' log targets used by test_log.py (log_file='logtarget_fixture:...')."""

import logging

calls = []       # (log_level given to the factory, level, message) from function_target
records = []     # logging.LogRecord objects from handler_target
factory_args = []

not_callable = 42


def function_target(log_level):
    factory_args.append(log_level)

    def log(level, message):
        calls.append((log_level, level, message))

    return log


class _Collect(logging.Handler):
    def emit(self, record):
        records.append(record)


def handler_target(log_level):
    factory_args.append(log_level)
    return _Collect()


def bad_return(log_level):
    return 42


def reset():
    del calls[:], records[:], factory_args[:]
