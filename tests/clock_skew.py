"""Make this process's wall clock wrong by a number of seconds (subprocess tests of clock skew)."""

import time


def skew_host_clock(seconds: float) -> None:
    real_time, real_time_ns = time.time, time.time_ns
    time.time = lambda: real_time() + seconds
    time.time_ns = lambda: real_time_ns() + int(seconds * 1e9)
