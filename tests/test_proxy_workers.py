"""`modelsat serve --workers 2`: several processes answer on one port, and /metrics merges their counts."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading

import httpx

from modelsat.serve.loopback import LoopbackServer, StubUpstream

KEY = "sk-workers-test-client-9f8e"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_workers_answer_and_metrics_count_every_request_once(tmp_path):
    upstream = StubUpstream("alpha")
    port = free_port()
    config = {"models": [{"name": "alpha", "base_url": "http://127.0.0.1:1/v1"}],
              "auth": {"client_keys_env": ["WORKERS_TEST_KEY"]}, "retries": {"attempts": 0}}
    with LoopbackServer(upstream, access_log=False) as up:
        config["models"][0]["base_url"] = f"{up.url}/v1"
        (tmp_path / "zoo.yaml").write_text(json.dumps(config))
        env = {**os.environ, "WORKERS_TEST_KEY": KEY, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
        (tmp_path / "metrics").mkdir()
        proc = subprocess.Popen([sys.executable, "-m", "modelsat.cli", "serve", str(tmp_path / "zoo.yaml"),
                                 "--workers", "2", "--port", str(port), "--log-level", "info"],
                                env=env, stderr=subprocess.PIPE, text=True)
        started, pids, lines = threading.Event(), set(), []

        def read_log():                # each worker logs "Started server process [pid]" once it serves
            for line in proc.stderr:
                lines.append(line)
                m = re.search(r"Started server process \[(\d+)\]", line)
                if m:
                    pids.add(m.group(1))
                    if len(pids) == 2:
                        started.set()
        threading.Thread(target=read_log, daemon=True).start()
        try:
            assert started.wait(120), "".join(lines[-20:])
            url = f"http://127.0.0.1:{port}"
            with httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=20) as client:
                codes = []
                for _ in range(20):    # a fresh connection each time, so both workers get some
                    codes.append(httpx.post(f"{url}/v1/chat/completions", timeout=20,
                                            headers={"Authorization": f"Bearer {KEY}"},
                                            json={"model": "alpha",
                                                  "messages": [{"role": "user", "content": "hi"}]}).status_code)
                metrics = client.get(f"{url}/metrics").text
        finally:
            proc.terminate()
            proc.wait(30)
    assert codes == [200] * 20
    assert 'modelsat_requests_total{endpoint="chat",status="200"} 20.0' in metrics
    assert upstream.requests == 20
    assert len(list((tmp_path / "metrics").glob("counter_*.db"))) == 2      # one file of counts per worker
