"""ApiFunction under SnapStart: hooks registered at init; a restore gives the store a new client.

The Lambda runtime's ``snapshot_restore_py`` is replaced by a fake registry placed first on the
path of a fresh interpreter, which imports the handler as a SnapStart init does, takes the
snapshot, restores it and answers a ping.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Final

from lambda_process import LAMBDA_ENV

REPO: Final = Path(__file__).resolve().parents[3]

FAKE_REGISTRY: Final = """
before, after = [], []
def register_before_snapshot(func, *args, **kwargs):
    before.append((func, args, kwargs))
    return func
def register_after_restore(func, *args, **kwargs):
    after.append((func, args, kwargs))
    return func
"""

SCRIPT: Final = """
import json, random
import snapshot_restore_py as registry
from api_fn import handler
from lambdakit import clients
services_at_init = sorted(key[0] for key in clients._cache.clients)
client_at_init = handler.store.client
for func, args, kwargs in reversed(registry.before):
    func(*args, **kwargs)
random.seed(99)  # every restored copy starts from the snapshot's generator state
for func, args, kwargs in registry.after:
    func(*args, **kwargs)
answer = handler.handler({"warmer": True}, None)
print(json.dumps({
    "hooks": [len(registry.before), len(registry.after)],
    "services_at_init": services_at_init,
    "new_client": handler.store.client is not client_at_init,
    "store_uses_cache": any(handler.store.client is c for c in clients._cache.clients.values()),
    "client_type": type(handler.store.client).__name__,
    "draw": random.random(),
    "warmed": answer["warmed"],
}))
"""


def _restore(
    tmp_path: Path, initialization_type: str, dynamodb_client: str = "http"
) -> dict[str, object]:
    (tmp_path / "snapshot_restore_py.py").write_text(FAKE_REGISTRY)
    path = [tmp_path, REPO / "functions" / "api", REPO / "layers" / "shared"]
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env={
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": os.pathsep.join(map(str, path)),
            **LAMBDA_ENV,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "TABLE_NAME": "state",
            "SYNC_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/sync-requests",
            "AWS_LAMBDA_INITIALIZATION_TYPE": initialization_type,
            "DYNAMODB_CLIENT": dynamodb_client,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    answer: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return answer


def test_a_restored_snapstart_copy_gets_new_clients_and_new_randomness(tmp_path: Path) -> None:
    # given the API initialised for a snapshot, then restored twice (two copies of one snapshot)
    first = _restore(tmp_path, "snap-start")
    second = _restore(tmp_path, "snap-start")

    # then init made no botocore client at all (the read path's client is the http one)
    assert first["services_at_init"] == []
    # and one hook of each kind was registered
    assert first["hooks"] == [1, 1]
    # and after the restore the store uses a new client (new connection, credentials re-read)
    assert first["new_client"] is True
    assert first["client_type"] == "DynamoHttpClient"
    # and the copies draw different numbers although their snapshot state was the same
    assert first["draw"] != second["draw"]
    assert first["warmed"] is True


def test_with_the_botocore_store_a_restore_rebinds_the_store_to_the_new_cached_client(
    tmp_path: Path,
) -> None:
    answer = _restore(tmp_path, "snap-start", "botocore")
    # init made the DynamoDB client only (no secret, no other service was reached for)
    assert answer["services_at_init"] == ["dynamodb"]
    assert answer["new_client"] is True
    assert answer["store_uses_cache"] is True


def test_an_on_demand_api_registers_no_hook(tmp_path: Path) -> None:
    answer = _restore(tmp_path, "on-demand")
    assert answer["hooks"] == [0, 0]
    assert answer["new_client"] is False
