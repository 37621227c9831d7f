"""benchmarks/gpu_check.py cannot rot before a GPU is at hand: its dry run (every section on the
CPU, at tiny sizes) writes both reports with every section's numbers."""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import subprocess
import sys
import time

import pytest
import torch

from alexnet_edu.model import AlexNet
from alexnet_edu.settings import PROJECT_ROOT
from alexnet_edu.shapes import trace

SECTIONS = ["environment", "cuda_tests", "throughput", "lrn_share", "memory", "distributed",
            "fashion_mnist"]


@pytest.fixture(scope="module")
def gpu_check():
    """The script as a module (it imports its neighbour train_throughput as a script does)."""
    sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
    try:
        return importlib.import_module("gpu_check")
    finally:
        sys.path.remove(str(PROJECT_ROOT / "benchmarks"))


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[dict, str, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("gpu_check")
    # a generous budget: on a busy CI machine every section must still run
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--dry-run", "--budget",
                           "3600", "--out", str(out)], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=1800)
    assert (out / "gpu_check.json").exists(), done.stdout[-3000:] + done.stderr[-3000:]
    return (json.loads((out / "gpu_check.json").read_text()),
            (out / "gpu_check.md").read_text(), done)


def test_every_section_ran_and_none_failed(report):
    data, _, done = report
    assert list(data["sections"]) == SECTIONS
    failed = {k: s.get("error") for k, s in data["sections"].items() if s["status"] == "failed"}
    assert not failed and done.returncode == 0, failed
    assert data["dry_run"] is True and data["elapsed_s"] > 0


def test_environment_names_versions_and_why_this_precision(report):
    env = report[0]["sections"]["environment"]["result"]
    assert env["torch"] == torch.__version__ and env["torchvision"]
    assert env["device"].startswith("cpu") and env["driver"]
    assert env["amp_auto"] in ("float32", "bfloat16") and "CPU" in env["amp_reason"]


def test_cuda_tests_were_collected_and_skip_here_with_a_reason(report):
    tests = report[0]["sections"]["cuda_tests"]["result"]
    assert tests["command"].startswith("pytest -m cuda")
    assert tests["skipped"] >= 5 and tests["passed"] == tests["failed"] == tests["errors"] == 0
    assert any("CUDA GPU" in reason for reason in tests["skip_reasons"])


def test_throughput_rows_for_the_naive_loop_and_each_precision_and_layout(report):
    speed = report[0]["sections"]["throughput"]["result"]
    rows = {row["step"]: row for row in speed["rows"]}
    assert list(rows) == ["naive", "fp32", "fp32 channels_last", "amp", "amp channels_last"]
    assert rows["amp"]["precision"] in ("bfloat16", "float16")
    assert rows["fp32 channels_last"]["channels_last"] and not rows["fp32"]["channels_last"]
    for row in rows.values():
        assert row["images_per_s"] > 0 and row["tflops"] > 0 and 0 < row["share_of_peak"]
        assert row["peak"] in speed["matmul_peak_tflops"]
    assert rows["naive"]["vs_naive"] == 1.0
    assert [row["fit_default"] for row in rows.values()].count(True) == 1
    # multiply-adds of the forward pass, x 2 FLOPs each, x 3 with the backward pass
    model = AlexNet(10, 1, image_size=67)
    flops = 6 * trace(model, (1, 67, 67)).total_mult_adds
    assert speed["gflops_per_training_image"] == pytest.approx(flops / 1e9)


def test_lrn_share_for_each_precision_and_layout(report):
    rows = report[0]["sections"]["lrn_share"]["result"]["rows"]
    assert [row["step"] for row in rows] == ["fp32", "fp32 channels_last", "amp",
                                             "amp channels_last"]
    for row in rows:
        assert row["with_lrn_ms"] > 0 and row["without_lrn_ms"] > 0
        assert row["lrn_share"] == pytest.approx(1 - row["without_lrn_ms"] / row["with_lrn_ms"])


def test_memory_tries_doubling_batches_up_to_the_cap(report):
    mem = report[0]["sections"]["memory"]["result"]
    assert [row["batch"] for row in mem["rows"]] == [2, 4, 8]
    assert all(row["fits"] for row in mem["rows"]) and mem["largest_batch"] == 8
    assert "reached" in mem["stopped"]
    assert all(row["mib_per_added_image"] is None for row in mem["rows"])   # a CPU: unmeasured


def test_memory_with_a_cap_below_the_first_batch_or_no_time_left(gpu_check):
    cpu = torch.device("cpu")
    capped = gpu_check.memory(dataclasses.replace(gpu_check.DRY, max_batch=1), cpu, math.inf)
    assert [row["batch"] for row in capped["rows"]] == [1] and capped["largest_batch"] == 1
    late = gpu_check.memory(gpu_check.DRY, cpu, deadline=0.0)
    assert late["rows"] == [] and "budget was used up before batch 2" in late["stopped"]


def test_distributed_runs_the_same_code_with_gloo_in_the_dry_run(report):
    section = report[0]["sections"]["distributed"]
    assert section["status"] == "ok", section
    assert "gloo" in section["result"]["compared"] and section["result"]["equal"] is True


def test_fashion_mnist_run_reports_its_test_top1(report):
    run = report[0]["sections"]["fashion_mnist"]["result"]
    assert 0 <= run["test_top1"] <= 1 and run["test_images"] > 0
    assert run["epochs"] == "1 of 1" and run["image_size"] == 67 and len(run["history"]) == 1


def test_the_budget_stops_the_fashion_mnist_run_after_an_epoch(gpu_check, monkeypatch,
                                                               tmp_path):
    """An epoch that takes "1000 s" (a shifted clock) of a 500 s budget: fit stops after it,
    saved, and the section reports one of two epochs (it once escaped as KeyboardInterrupt)."""
    class Clock:
        shift = 0.0

        @staticmethod
        def perf_counter():
            return time.perf_counter() + Clock.shift

    real_fit = gpu_check.fit

    def fit(*args, on_epoch_end, **kwargs):
        def slow_epoch(history):
            Clock.shift += 1000.0
            return on_epoch_end(history)
        return real_fit(*args, on_epoch_end=slow_epoch, **kwargs)

    monkeypatch.setattr(gpu_check, "time", Clock)
    monkeypatch.setattr(gpu_check, "fit", fit)
    monkeypatch.setattr(gpu_check, "estimate_epoch_seconds", lambda *args, **kwargs: 1.0)
    report = gpu_check.Report(tmp_path, budget=500, header={
        "command": "test", "started": "now", "dry_run": True, "device": "cpu"})
    sizes = dataclasses.replace(gpu_check.DRY, epochs=2)
    report.section("fashion_mnist", lambda: gpu_check.fashion_mnist(
        sizes, torch.device("cpu"), tmp_path / "data", True, report.deadline))
    section = report.data["sections"]["fashion_mnist"]
    assert section["status"] == "ok", section
    assert section["result"]["epochs"] == "1 of 2" and len(section["result"]["history"]) == 1
    assert section["result"]["stopped"].startswith("after epoch 1")
    assert 0 <= section["result"]["test_top1"] <= 1


def test_numbers_out_of_range_are_usage_errors(gpu_check, capsys):
    for flag, value in (("--max-batch", "0"), ("--epochs", "-1"), ("--budget", "nan"),
                        ("--budget", "abc")):
        with pytest.raises(SystemExit) as stop:
            gpu_check.main(["--dry-run", flag, value])
        assert stop.value.code == 2 and f"{flag}: must be" in capsys.readouterr().err


def test_markdown_has_every_section_and_its_numbers(report):
    data, text, _ = report
    for i, name in enumerate(SECTIONS, 1):
        assert f"## {i}. {name}: {data['sections'][name]['status']}" in text
    assert "| step | precision | channels_last | images_per_s |" in text
    assert f"- test_top1: {data['sections']['fashion_mnist']['result']['test_top1']:.4g}" in text
    assert "Dry run on the CPU" in text


def test_a_failing_section_is_reported_and_the_rest_still_run(gpu_check, tmp_path):
    report = gpu_check.Report(tmp_path, budget=60, header={
        "command": "test", "started": "now", "dry_run": True, "device": "cpu"})
    report.section("broken", lambda: 1 / 0)
    report.section("fine", lambda: {"value": 1.5})
    report.budget = 0
    report.section("late", lambda: pytest.fail("ran after the budget"))
    sections = json.loads((tmp_path / "gpu_check.json").read_text())["sections"]
    assert sections["broken"]["status"] == "failed"
    assert sections["broken"]["error"] == "ZeroDivisionError: division by zero"
    assert sections["fine"] == {"status": "ok", "result": {"value": 1.5},
                                "seconds": sections["fine"]["seconds"]}
    assert sections["late"]["status"] == "skipped" and "budget" in sections["late"]["reason"]
    assert report.failed == ["broken"]


def test_same_weights_tells_rounding_from_another_run(gpu_check, tmp_path):
    weights = {"w": torch.randn(50, 50)}
    torch.save({"model": weights}, tmp_path / "one.pt")
    torch.save({"model": {"w": weights["w"] * (1 + 1e-6)}}, tmp_path / "rounded.pt")
    torch.save({"model": {"w": weights["w"] + 1e-2}}, tmp_path / "other.pt")
    assert gpu_check.same_weights(tmp_path / "one.pt", tmp_path / "rounded.pt")["equal"]
    other = gpu_check.same_weights(tmp_path / "one.pt", tmp_path / "other.pt")
    assert not other["equal"] and other["max_abs_difference"] == pytest.approx(1e-2, rel=1e-3)


def test_junit_counts_tell_failures_from_modules_that_could_not_be_imported(gpu_check,
                                                                            tmp_path):
    xml = tmp_path / "junit.xml"
    xml.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.test_cuda" name="test_a" />'
        '<testcase classname="tests.test_cuda" name="test_b">'
        '<failure message="AssertionError: conv1.weight&#10;assert False">x</failure></testcase>'
        '<testcase classname="tests.test_cuda" name="test_c">'
        '<skipped message="needs a CUDA GPU">y</skipped></testcase>'
        '<testcase classname="" name="tests.test_viz"><error message="collection failure">'
        "Traceback:\nE   ModuleNotFoundError: No module named 'ipywidgets'</error></testcase>"
        '</testsuite></testsuites>')
    counts = gpu_check.junit_counts(xml)
    assert {k: counts[k] for k in ("passed", "failed", "errors", "skipped")} == {
        "passed": 1, "failed": 1, "errors": 0, "skipped": 1}
    assert counts["problems"] == ["tests.test_cuda::test_b: AssertionError: conv1.weight"]
    assert counts["skip_reasons"] == ["needs a CUDA GPU"]
    assert counts["not_collected"] == [
        "tests.test_viz: ModuleNotFoundError: No module named 'ipywidgets'"]
