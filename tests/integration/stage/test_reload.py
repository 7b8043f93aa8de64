"""Reload: a saved edit is served by the next invocation, without restarting the stage."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING

import pytest

from bench.reload import TEMPLATE, handler_source
from localstage.stage import LocalStage, StageConfig

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("stage")]


class Notices:
    """The stage's one-line notices, and a way to wait for the next one."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._arrived = threading.Condition()

    def __call__(self, line: str) -> None:
        with self._arrived:
            self.lines.append(line)
            self._arrived.notify_all()

    def next_after(self, count: int) -> str:
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.lines) > count, timeout=60)
        assert len(self.lines) > count, "the stage said nothing"
        return self.lines[count]


def test_an_edit_is_served_by_the_next_invocation_and_a_template_edit_asks_for_a_restart(
    tmp_path: Path,
) -> None:
    # given a stage running a function that is warm
    (tmp_path / "fn").mkdir()
    (tmp_path / "fn" / "app.py").write_text(handler_source("one"))
    template = tmp_path / "template.yaml"
    template.write_text(TEMPLATE)
    notices = Notices()
    config = StageConfig.ephemeral(template=template, reload=True, say=notices)
    with LocalStage(config) as stage:
        assert json.loads(stage.invoke("Fn", {}).payload) == {"version": "one"}
        assert stage.runtime is not None
        assert stage.runtime.warm_workers("Fn") == 1
        # when its code is saved with a change
        (tmp_path / "fn" / "app.py").write_text(handler_source("two"))
        notice = notices.next_after(0)
        # then one line says so, and the next invocation runs the new code, without a restart
        assert notice == (
            "reload: fn/app.py changed: Fn (1 warm retired); the next invocation runs the new code"
        )
        assert json.loads(stage.invoke("Fn", {}).payload) == {"version": "two"}
        # when the template is saved, then the line says a restart applies it
        template.write_text(TEMPLATE + "Outputs: {}\n")
        assert "template.yaml is read at start, restart the stage" in notices.next_after(1)
