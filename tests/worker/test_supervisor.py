"""The supervisor replaces a child that asks for it, at once, and the run still succeeds."""

import os

from tempotask_django.worker.supervisor import REPLACE_EXIT_CODE, Supervisor


def test_a_child_that_asks_to_be_replaced_is_replaced_at_once(tmp_path):
    starts = tmp_path / "starts"

    def child_main() -> int:
        fd = os.open(starts, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, b"x")
        position = os.lseek(fd, 0, os.SEEK_CUR)  # this child's place: appends are atomic
        os.close(fd)
        # The first two children ask for a replacement; their replacements finish normally.
        return REPLACE_EXIT_CODE if position <= 2 else 0

    assert Supervisor(2, child_main).run() == 0
    assert starts.read_bytes() == b"xxxx"
