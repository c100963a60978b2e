"""How jobline's processes run: the loop they run on, and what SIGUSR1 shows of them."""

from __future__ import annotations

import asyncio
import io
import sys

import pytest
import uvloop

from jobline.serving import dump_tasks, loop_factory, run_until_signalled


def test_the_loop_is_uvloop_unless_asyncio_is_asked_for() -> None:
    assert loop_factory("asyncio") is None
    for choice in ("auto", "uvloop"):
        factory = loop_factory(choice)
        assert factory is not None
        loop = factory()
        try:
            assert isinstance(loop, uvloop.Loop)
        finally:
            loop.close()


def test_without_uvloop_auto_is_asyncio_and_uvloop_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` now fails
    assert loop_factory("auto") is None
    with pytest.raises(RuntimeError, match="uvloop is not installed"):
        loop_factory("uvloop")


@pytest.mark.parametrize("choice", ["auto", "asyncio"])
def test_a_command_runs_on_the_loop_chosen(choice: str) -> None:
    async def command() -> int:
        running = type(asyncio.get_running_loop())
        return 3 if (running is uvloop.Loop) == (choice == "auto") else 4

    assert run_until_signalled(command(), loop_factory(choice)) == 3


async def test_the_task_dump_shows_what_each_task_waits_in() -> None:
    async def innermost() -> None:
        await asyncio.Event().wait()

    async def outer() -> None:
        await innermost()

    task = asyncio.create_task(outer(), name="waiting-one")
    await asyncio.sleep(0)
    out = io.StringIO()
    try:
        dump_tasks(out)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    shown = out.getvalue()
    waiting = shown[shown.index("task waiting-one (pending):") :].splitlines()
    assert [line.split()[-1] for line in waiting[1:4]] == ["outer", "innermost", "wait"]
