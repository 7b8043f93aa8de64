"""Stages as a developer runs them: restart at once, two side by side, examples that work."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from typing import TYPE_CHECKING

import pytest
import requests
from stage_support import TOOL_ENV, isolated_stage, localstage_cli

from localstage.stage import LocalStage, StageConfig
from localstage.vanta_data import Dataset
from localstage.vanta_standin import Credentials, start_standin
from locate import REPO, running_stage

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("stage")]

PORT_FLAGS = ("--api-port", "--invoke-port", "--moto-port", "--vanta-port")


class StageProcess:
    """`python -m localstage up` (what `make local` runs) in a child process."""

    def __init__(self, state_file: Path, ports: list[int], *extra: str) -> None:
        args = [sys.executable, "-m", "localstage", "up", "--state-file", str(state_file)]
        for flag, port in zip(PORT_FLAGS, ports, strict=True):
            args += [flag, str(port)]
        args += ["--no-first-sync", *extra]
        env = {**os.environ, **TOOL_ENV}
        self.proc = subprocess.Popen(
            args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO
        )
        self.output: list[str] = []
        # A stage that never prints what a test waits for is killed, so the test fails, not hangs.
        self._watchdog = threading.Timer(180, self.proc.kill)
        self._watchdog.start()

    def wait_until_up(self) -> str:
        """The banner, once the stage serves; its whole output if it exited instead."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            if line.startswith("first sync:"):
                break
        return "".join(self.output)

    def read_until(self, text: str) -> str:
        """Its console lines up to the first holding `text` (all of them if it exits first)."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            if text in line:
                return line
        return ""

    def stop(self, *, signal_it: bool = True) -> str:
        """Its whole output once it exited (Ctrl-C first, unless it is to exit by itself)."""
        if signal_it and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=60)
        self._watchdog.cancel()
        self.output.append(out)
        return "".join(self.output)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStage]:
    dataset = Dataset(seed=5, vulnerability_count=50)
    folder = tmp_path_factory.mktemp("stages")
    with isolated_stage(folder, name="first", dataset=dataset) as running:
        yield running


def test_a_stage_restarts_at_once_on_the_ports_it_just_left(tmp_path: Path) -> None:
    # given a stage that served a request (its connections linger in TIME-WAIT) and was stopped
    ports = _free_ports(4)
    stage = StageProcess(tmp_path / "stage.json", ports)
    banner = stage.wait_until_up()
    api = f"http://127.0.0.1:{ports[0]}"
    assert requests.get(f"{api}/health", timeout=60).status_code == 200, banner
    assert "local stage stopped" in stage.stop()
    # when it is started again straight away on the same ports
    again = StageProcess(tmp_path / "stage.json", ports)
    try:
        banner = again.wait_until_up()
        # then it comes up and serves
        assert "already in use" not in banner
        assert requests.get(f"{api}/health", timeout=60).status_code == 200, banner
    finally:
        again.stop()


def test_a_second_stage_neither_hides_nor_deletes_the_first(
    first: LocalStage, tmp_path: Path
) -> None:
    state = first.config.state_file
    assert state is not None
    # given a running stage; when a second one is told to write the same state file
    taken = StageProcess(state, [0, 0, 0, 0])
    refusal = taken.stop(signal_it=False)
    # then it is refused in one line naming the live stage's pid, and starts nothing
    assert taken.proc.returncode == 2
    assert f"belongs to the running local stage pid {os.getpid()}" in refusal
    assert refusal.count("\n") == 1, refusal
    # when a second stage runs beside it with its own state file, then stops
    second = StageProcess(state.with_name("stage-second.json"), [0, 0, 0, 0])
    try:
        second.wait_until_up()
        assert running_stage(state.with_name("stage-second.json")) is not None
    finally:
        second.stop()
    # then the first stage is still the one its state file names
    found = running_stage(state)
    assert found is not None
    assert found.api_url == first.urls["api"]


def test_the_printed_aws_cli_example_works_as_printed_on_a_fresh_shell(tmp_path: Path) -> None:
    if shutil.which("aws") is None:
        pytest.skip("the aws CLI is not installed")
    stage = StageProcess(tmp_path / "stage.json", [0, 0, 0, 0])
    try:
        banner = stage.wait_until_up()
        example = next(line.strip() for line in banner.splitlines() if "aws lambda invoke" in line)
        # given a fresh shell: no AWS variables, no ~/.aws, in another folder
        fresh = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
        ran = subprocess.run(
            ["bash", "-c", example],
            env=fresh,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        stage.stop()
    # then it succeeds and leaves its output under .local/, not where it was run
    assert ran.returncode == 0, ran.stderr
    assert '"statusCode": 200' in ran.stdout
    assert (REPO / ".local" / "out.json").exists()
    assert not (tmp_path / "out.json").exists()


def test_invoke_names_the_stage_it_uses_and_refuses_an_unknown_function(
    first: LocalStage,
) -> None:
    state = str(first.config.state_file)
    event = str(REPO / "events" / "api_get_health.json")
    used = localstage_cli("invoke", "ApiFunction", event, "--state-file", state)
    assert used.returncode == 0, used.stderr
    assert f"using the local stage first at {first.urls['api']}" in used.stderr
    unknown = localstage_cli("invoke", "Nope", event, "--state-file", state)
    assert unknown.returncode == 2
    assert unknown.stderr.count("\n") == 1
    assert "unknown function Nope (functions: ApiFunction, SyncFunction, WarmerFunction)" in (
        unknown.stderr
    )
    assert json.loads(used.stdout)["statusCode"] == 200


def test_the_console_shows_each_invocation_by_request_id_and_each_api_request(
    tmp_path: Path,
) -> None:
    # given a running stage (as make local runs it)
    state = tmp_path / "stage.json"
    stage = StageProcess(state, [0, 0, 0, 0], "--vulnerabilities", "20")
    try:
        stage.wait_until_up()
        api = json.loads(state.read_text())["api_url"]
        # when an API request arrives, then an access line (the template's format) names
        # method, path and status
        assert requests.get(f"{api}/health", timeout=60).status_code == 200
        access = stage.read_until('"resourcePath":"/health"')
        assert '"httpMethod":"GET"' in access
        assert '"status":"200"' in access
        # and `make logs-local FN=WarmerFunction` follows the warmer from another terminal
        follower = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "localstage",
                "logs",
                "WarmerFunction",
                "--state-file",
                str(state),
            ],
            env={**os.environ, **TOOL_ENV},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # when a schedule fires an asynchronous (Event) invocation (the warmer's: the sync's
        # schedule now goes through the SyncRequests queue)
        fired = localstage_cli("fire", "WarmerFunction.OffPeak", "--state-file", str(state))
        request_id = fired.stdout.rsplit("request ", 1)[1].strip()
        # then its REPORT line reaches the console, prefixed by function and request id
        report = stage.read_until(f"REPORT RequestId: {request_id}")
        # and the sync the schedule sends through the SyncRequests queue is shown the same way
        localstage_cli("fire", "SyncFunction", "--state-file", str(state))
        sync_report = stage.read_until("REPORT RequestId: ")
        while sync_report and not sync_report.startswith("[SyncFunction "):
            sync_report = stage.read_until("REPORT RequestId: ")
    finally:
        stage.stop()
    followed, said = follower.communicate(timeout=60)  # it ends when the stage stops
    assert report.startswith(f"[WarmerFunction {request_id}] REPORT RequestId: {request_id}")
    prefixed = re.match(r"\[SyncFunction (\S+)\] REPORT RequestId: (\S+)\t", sync_report)
    assert prefixed is not None, sync_report
    assert prefixed.group(1) == prefixed.group(2)
    assert f"[WarmerFunction {request_id}] REPORT RequestId: {request_id}" in followed
    assert "[SyncFunction " not in followed
    assert "the stage stopped" in said
    assert any(
        line.startswith(f"[WarmerFunction {request_id}] ") and "warming run" in line
        for line in stage.output
    )


def test_a_stage_on_another_vanta_uses_its_credentials_and_starts_no_stand_in() -> None:
    # given an upstream of our own (a stand-in on loopback, as the real API would be) with its
    # own client, and a stage pointed at it with --vanta-url's settings
    client = Credentials("vci_own_client", "vcs_own_secret")
    upstream = start_standin(dataset=Dataset(seed=9, vulnerability_count=30), credentials=client)
    try:
        config = StageConfig.ephemeral(
            stack_name="own-upstream",
            vanta_url=upstream.url,
            vanta_credentials={
                "client_id": client.client_id,
                "client_secret": client.client_secret,
            },
        )
        with LocalStage(config) as stage:
            # then the stage started no stand-in and syncs from that upstream with the client
            assert stage.standin is None
            assert stage.describe()["vanta_url"] == upstream.url
            result = stage.invoke("SyncFunction", {"action": "sync", "reason": "own upstream"})
    finally:
        upstream.stop()
    answer = json.loads(result.payload)
    assert result.function_error is None, answer
    assert answer["counts"]["fetched"] > 0
