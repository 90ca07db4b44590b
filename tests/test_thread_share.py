"""Commands share the cores (plumbing/thread_share.py): real second processes register beside this
one, and this one's torch threads follow the count the module docstring states."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from plumbing import thread_share

CHILD = """
import sys, time, torch
from plumbing import thread_share
state = sys.argv[1]
thread_share.share_threads(int(state) if state.isdigit() else None)
if state == "idle":
    with thread_share.idle():
        print("ready", flush=True); time.sleep(60)
print("ready", flush=True)
time.sleep(60)
"""


@pytest.fixture
def jobs(tmp_path, monkeypatch):
    """A private jobs folder, this process unregistered before and after, its threads restored."""
    monkeypatch.setenv("NEUMIP_JOBS_DIR", str(tmp_path / "jobs"))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(thread_share, "_job", None)
    monkeypatch.setattr(thread_share, "CHECK_EVERY", 0.0)
    threads = torch.get_num_threads()
    children: list[subprocess.Popen] = []

    def start(state: str) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-c", CHILD, state], stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).parents[1])
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        children.append(p)
        return p

    yield start
    for p in children:
        p.kill()
        p.wait()
    torch.set_num_threads(threads)


def _share(cores: int) -> int:
    thread_share.share_threads()
    job = thread_share._job
    assert job is not None
    job.cores = cores  # as on a machine of this many cores
    job.last_check = -1e9
    return job.share()


def test_a_lone_job_keeps_every_core_and_two_share_them(jobs):
    assert _share(4) == 4
    other = jobs("shared")
    assert thread_share._job.share() == 2
    jobs("shared")
    assert thread_share._job.share() == 1  # 4 // 3
    other.kill()
    other.wait()
    assert thread_share._job.share() == 2  # the ended job's file is found unlocked and removed
    assert len(list(thread_share.jobs_dir().iterdir())) == 2


def test_fixed_threads_are_counted_and_an_idle_parent_is_not(jobs):
    assert _share(4) == 4
    jobs("3")  # a job with threads=3: this one gets the rest
    assert thread_share._job.share() == 1
    jobs("idle")  # only waits for its child: not counted
    assert thread_share._job.share() == 1


def test_adjust_sets_torch_threads_and_gives_them_back(jobs):
    _share(2)
    thread_share.adjust_threads()
    assert torch.get_num_threads() == 2
    other = jobs("shared")
    thread_share.adjust_threads()
    assert torch.get_num_threads() == 1
    other.kill()
    other.wait()
    time.sleep(0.05)
    thread_share.adjust_threads()
    assert torch.get_num_threads() == 2


def test_a_fixed_job_keeps_its_threads(jobs):
    jobs("shared")
    thread_share.share_threads(1)
    thread_share.adjust_threads()
    assert torch.get_num_threads() == 1 and thread_share._job.share() == 1
