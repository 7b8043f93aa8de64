"""The stage's console: lines by function and request id, warming folded, quiet and filters."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from localstage.console import Console
from localstage.worker import LogLine

if TYPE_CHECKING:
    from pathlib import Path


def test_each_line_is_prefixed_by_function_and_request_id_and_kept_in_the_log_file(
    tmp_path: Path,
) -> None:
    out = io.StringIO()
    console = Console(out, log_file=tmp_path / "stage.log")
    console(
        LogLine("stack-sync", "REPORT RequestId: r-1\tDuration: 3.00 ms", "SyncFunction", "r-1")
    )
    console(LogLine("stack-api", "INIT_START Runtime Version: python:3.13.local", "ApiFunction"))
    console.close()
    expected = (
        "[SyncFunction r-1] REPORT RequestId: r-1\tDuration: 3.00 ms\n"
        "[ApiFunction init] INIT_START Runtime Version: python:3.13.local\n"
    )
    assert out.getvalue() == expected
    assert (tmp_path / "stage.log").read_text() == expected


def test_the_pings_of_a_warming_tick_fold_into_one_line() -> None:
    out = io.StringIO()
    console = Console(out)
    for rid, init in (("a", "\tInit Duration: 900.00 ms"), ("b", ""), ("c", "")):
        console(LogLine("stack-api", f"START RequestId: {rid}", "ApiFunction", rid, warming=True))
        report = f"REPORT RequestId: {rid}{init}"
        console(LogLine("stack-api", report, "ApiFunction", rid, warming=True))
    console.close()  # flushes the pending fold at once
    assert out.getvalue() == "[ApiFunction warming] 3 pings, 1 cold\n"


def test_quiet_keeps_access_lines_and_a_filter_keeps_one_function() -> None:
    quiet, only_sync = io.StringIO(), io.StringIO()
    access = '{"requestId":"q-1","httpMethod":"GET","resourcePath":"/health","status":"200"}'
    for stream, options in ((quiet, {"quiet": True}), (only_sync, {"functions": ["SyncFunction"]})):
        console = Console(stream, **options)
        console(LogLine("Api", access, "Api", access=True))
        console(LogLine("stack-api", "END RequestId: r-1", "ApiFunction", "r-1"))
        console(LogLine("stack-sync", "END RequestId: r-2", "SyncFunction", "r-2"))
        console.close()
    assert quiet.getvalue() == f"[Api] {access}\n"
    assert only_sync.getvalue() == "[SyncFunction r-2] END RequestId: r-2\n"
