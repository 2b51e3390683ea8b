"""`modelsat savings LOG --zoo Z`: both log formats end to end with the shipped router and a priced zoo folder,
bad lines reported by number, live prompts kept off the disk cache, and usage mistakes exit 2 in one line."""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from modelsat.aptitude.zoo_dir import add_model, init_zoo
from modelsat.cli.route import shipped_path

MODELSAT = Path(sys.executable).with_name("modelsat")
SHIPPED_ZOO = shipped_path("default_zoo")
PRICED = {"Phi-3-mini-4k-instruct": {"input": 0.13, "output": 0.52}, "gemma-7b": 0.07,
          "Mixtral-8x7B-Instruct-v0.1": 0.6}
PROMPTS = ([f"What is the derivative of x^{n} + {n}x with respect to x?" for n in range(2, 22)]
           + [f"Summarise the causes of the {w} in three sentences." for w in
              ("French Revolution", "Thirty Years' War", "fall of Constantinople", "Meiji Restoration",
               "War of the Roses", "Opium Wars", "Hundred Years' War", "Russian Revolution")]
           + [f"Which enzyme breaks down {s} in the human gut?" for s in ("lactose", "starch", "fat", "protein")])


def modelsat(*args: str, cache: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="200")
    if cache is not None:
        env["MODELSAT_CACHE"] = str(cache)
    return subprocess.run([str(MODELSAT), "savings", *args], capture_output=True, text=True, timeout=600, env=env)


def one_line_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2 and "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> Path:
    """A zoo folder as `modelsat zoo init/add` makes it: three shipped-zoo profiles, each with a price."""
    z = tmp_path_factory.mktemp("zoo") / "priced"
    init_zoo(z)
    for name, price in PRICED.items():
        add_model(z, SHIPPED_ZOO / f"{name}.json", "http://127.0.0.1:8001/v1",
                  price if isinstance(price, dict) else {"input": price, "output": price})
    return z


@pytest.fixture(scope="module")
def jsonl_run(tmp_path_factory, zoo):
    """The prompts as chat requests, with four bad lines among them, routed with an empty cache folder."""
    d = tmp_path_factory.mktemp("jsonl")
    lines = [json.dumps({"messages": [{"role": "user", "content": p}]}) for p in PROMPTS]
    lines.insert(3, "{oops")                                              # line 4
    lines.insert(9, "")                                                   # line 10
    lines.insert(15, json.dumps({"messages": [{"role": "assistant", "content": "hi"}]}))   # line 16
    lines.insert(20, json.dumps({"messages": [{"role": "user", "content": "z" * 400}]}))  # line 21
    (d / "prompts.jsonl").write_text("\n".join(lines) + "\n")
    r = modelsat(str(d / "prompts.jsonl"), "--zoo", str(zoo), "--out", str(d / "out"), "--fit-prompts", "10",
                 "--chunk", "8", "--max-line-bytes", "300", "--show-bad", "3", cache=d / "cache")
    assert r.returncode == 0, r.stdout + r.stderr
    return r, d


@pytest.fixture(scope="module")
def text_run(tmp_path_factory, zoo):
    """The same prompts, one a line."""
    d = tmp_path_factory.mktemp("text")
    (d / "prompts.txt").write_text("\n".join(PROMPTS) + "\n")
    r = modelsat(str(d / "prompts.txt"), "--zoo", str(zoo), "--out", str(d / "out"), "--fit-prompts", "10",
                 "--chunk", "8")
    assert r.returncode == 0, r.stdout + r.stderr
    return r, d


def result(run) -> dict:
    return json.loads((run[1] / "out" / "savings.json").read_text())


def test_bad_lines_are_reported_by_number_on_screen_and_in_the_files(jsonl_run):
    r, d = jsonl_run
    bad = result(jsonl_run)["log"]["bad_lines"]
    assert bad["count"] == 4 and bad["listed"] == 3
    assert [b["line"] for b in bad["first"]] == [4, 10, 16]
    assert bad["by_reason"] == {"invalid JSON": 1, "empty line": 1, "no user message": 1, "too long": 1}
    assert "4 bad lines" in r.stdout and "line 4: invalid JSON" in r.stdout and "1 more in" in r.stdout
    md = (d / "out" / "savings.md").read_text()
    assert "- line 16: no user message" in md and "too long 1" in md


def test_both_formats_route_the_same_prompts_to_the_same_figures(jsonl_run, text_run):
    a, b = result(jsonl_run), result(text_run)
    assert (a["log"]["format"], b["log"]["format"]) == ("jsonl", "text")
    assert "read as jsonl" in (jsonl_run[1] / "out" / "savings.md").read_text()
    assert "as text: its first non-blank line is not a JSON object" in text_run[0].stdout
    assert a["log"]["prompts"] == b["log"]["prompts"] == len(PROMPTS)
    singles_a = {r["name"]: r for r in a["rows"] if r["kind"] == "single"}
    singles_b = {r["name"]: r for r in b["rows"] if r["kind"] == "single"}
    assert set(singles_a) == set(PRICED)
    for name in PRICED:    # the same texts (chunked alike), the same characters billed
        assert singles_a[name]["mean_p"] == pytest.approx(singles_b[name]["mean_p"], abs=1e-9)
        assert singles_a[name]["mean_cost_usd"] == pytest.approx(singles_b[name]["mean_cost_usd"])


def test_the_report_has_every_row_says_predicted_and_writes_a_plot(text_run):
    r, d = text_run
    res = result(text_run)
    assert "Predicted, not measured" in res["predicted"] and "Predicted, not measured" in r.stdout
    table = [row for row in res["rows"] if row["in_table"]]
    policies = [row["policy"] for row in table if row["kind"] == "policy"]
    assert policies.count("max-quality") == 1 and policies.count("tradeoff") == 3
    assert policies.count("threshold") == 3 and policies.count("budget") == 2
    best = next(row for row in table if row.get("best_single"))
    assert best["name"] == res["best_single"] and best["cost_vs_best_single"] == pytest.approx(1.0)
    for row in table:
        assert row["cost_per_1000_usd"] == pytest.approx(1000 * row["mean_cost_usd"])
        assert sum(row["share"].values()) == pytest.approx(1.0)
    # the curves hold more points than the table
    assert len([row for row in res["rows"] if row["policy"] == "tradeoff"]) > 3
    assert res["knobs"]["fit_prompts"] == 10
    png = (d / "out" / "savings.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    md = (d / "out" / "savings.md").read_text()
    assert "| max-quality |" in md and "(best single)" in md
    assert "prompts per second" in r.stdout


def test_a_log_file_gets_dated_lines(text_run):
    stamped = [line for line in text_run[0].stdout.splitlines() if line[:4].isdigit() and "T" in line[:20]]
    assert any("loading the router" in line for line in stamped)
    assert any("prompts per second" in line for line in stamped)


def test_live_prompts_never_reach_the_disk_cache(jsonl_run):
    cache = jsonl_run[1] / "cache"
    files = list(cache.glob("minilm-embeddings-*.sqlite"))
    assert files, "the router looked no prompt up in the cache folder"
    for f in files:
        with sqlite3.connect(f) as db:
            assert db.execute("SELECT COUNT(*) FROM emb").fetchone()[0] == 0


def test_a_missing_log_exits_2(tmp_path, zoo):
    assert "no such file" in one_line_error(modelsat(str(tmp_path / "nope.jsonl"), "--zoo", str(zoo)))


def test_an_empty_zoo_exits_2(tmp_path):
    (tmp_path / "p.txt").write_text("What is 2 + 2?\n")
    (tmp_path / "zoo.yaml").write_text(yaml.safe_dump({"name": "empty", "models": ["m1", "m2"]}))
    assert "none of its 2 models has a profile" in one_line_error(
        modelsat(str(tmp_path / "p.txt"), "--zoo", str(tmp_path / "zoo.yaml")))
    (tmp_path / "folder").mkdir()
    assert "no profile JSON" in one_line_error(modelsat(str(tmp_path / "p.txt"), "--zoo", str(tmp_path / "folder")))


def test_a_zoo_without_prices_exits_2_and_says_how_to_price_it(tmp_path):
    (tmp_path / "p.txt").write_text("What is 2 + 2?\n")
    line = one_line_error(modelsat(str(tmp_path / "p.txt"), "--zoo", str(SHIPPED_ZOO)))
    assert "7 of 7 models have no price" in line and "--price" in line


def test_the_zoo_is_required_and_knobs_are_checked(tmp_path, zoo):
    (tmp_path / "p.txt").write_text("What is 2 + 2?\n")
    r = modelsat(str(tmp_path / "p.txt"))
    assert r.returncode == 2 and "--zoo" in r.stderr
    assert "--format" in one_line_error(modelsat(str(tmp_path / "p.txt"), "--zoo", str(zoo), "--format", "csv"))
    assert "--fit-prompts" in one_line_error(modelsat(str(tmp_path / "p.txt"), "--zoo", str(zoo),
                                                      "--fit-prompts", "0"))


def test_an_out_path_that_is_a_file_exits_2_before_routing(tmp_path, zoo):
    (tmp_path / "p.txt").write_text("What is 2 + 2?\n")
    (tmp_path / "taken").write_text("")
    r = modelsat(str(tmp_path / "p.txt"), "--zoo", str(zoo), "--out", str(tmp_path / "taken"))
    assert "a file, not a folder" in one_line_error(r) and "loading the router" not in r.stdout


def test_a_router_without_probabilities_exits_2_and_says_to_calibrate(tmp_path, zoo):
    """The shipped learned correction carries no calibrator: its scores are log-odds, not P(good answer)."""
    (tmp_path / "p.txt").write_text("What is 2 + 2?\n")
    line = one_line_error(modelsat(str(tmp_path / "p.txt"), "--zoo", str(zoo), "--router",
                                   str(shipped_path("modelsat-cpu-default"))))
    assert "gives scores, not probabilities" in line and "calibrate" in line
