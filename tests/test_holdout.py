"""The test split is read by final reports only: the guard refuses every other read, training runs
sealed even inside a report, and only the reporting commands open it."""

import re
from pathlib import Path

import pytest
from conftest import run_ved

from ved import captions, holdout, metrics, models
from ved import config as configs
from ved.pipeline import load_judge
from ved.train import train

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "configs" / "tiny-label.toml"


def test_every_read_of_the_test_split_outside_a_report_is_refused(mnist_data):
    reads = [
        lambda: mnist_data.split("test"),
        lambda: metrics.RealReference(load_judge(), mnist_data),  # its default split is the test
        lambda: captions.logic_pool("test"),
        *[lambda f=f: captions.caption_pool(f, "test") for f in captions.FAMILIES],
        lambda: captions.pool_for({"family": "arithmetic", "hold_out_pairs": 30}, "test"),
    ]
    for read in reads:
        with pytest.raises(holdout.TestSplitError) as refused:
            read()
        assert "\n" not in str(refused.value) and "final_report" in str(refused.value)
    # training and validation stay open, and the test split's size is no secret
    assert len(mnist_data.split("valid")[0]) == 10_000 and mnist_data.count("test") == 10_000
    assert captions.caption_pool("arithmetic", "valid")
    with holdout.final_report():
        assert len(mnist_data.split("test")[0]) == 10_000
        with holdout.sealed():  # sealing wins over an outer report
            pytest.raises(holdout.TestSplitError, mnist_data.split, "test")
        assert holdout.is_open()
    assert not holdout.is_open()


class TestSplitProbe(models.PaperVED):
    """The paper's VED, which tries to read the test split after each epoch, as a tuning step might,
    and records what happened."""

    __test__ = False
    outcomes: list = []

    def after_epoch(self, train_set, generator):
        try:
            captions.caption_pool("label", "test")
            self.outcomes.append("read")
        except holdout.TestSplitError:
            self.outcomes.append("refused")


def test_training_is_sealed_even_inside_a_report(tmp_path, monkeypatch):
    monkeypatch.setitem(models.GENERATORS, "probe", TestSplitProbe)
    config = configs.load(TINY)
    config["model"]["kind"] = "probe"
    config["train"]["max_epochs"] = 2
    TestSplitProbe.outcomes.clear()
    with holdout.final_report():  # a caller that opened the gate does not open it for training
        train(config, tmp_path / "run", progress=False, log=lambda m: None)
    assert TestSplitProbe.outcomes == ["refused", "refused"]


def test_only_the_reporting_code_opens_the_test_split():
    """final_report() appears in the commands that report on finished models and nowhere else: not in
    training, metrics, the pipeline, the server, the models, or the experiments that choose settings."""
    opened = {
        str(p.relative_to(ROOT))
        for folder in ("src", "experiments", "benchmarks")
        for p in (ROOT / folder).rglob("*.py")
        if re.search(r"\bfinal_report\(", p.read_text(encoding="utf-8")) and p.name != "holdout.py"
    }
    assert opened == {
        "src/ved/cli.py",  # ved evaluate, ved captions list
        "src/ved/bench.py",  # ved.bench.score on the test split: a final report on a user's images
        "src/ved/reproduce.py",  # its evaluate and draw stages, after every run is trained
        "src/ved/train_judge.py",  # the judge's test accuracy, after its epoch is chosen
        "experiments/length_generalisation.py",  # a report on the caption encoders, on test lengths
        "experiments/kid_real_digits.py",  # real test digits' KID: a report on the metric
        "experiments/numbers_study.py",  # --split test: numbers past nine, after every seed is trained
    }, opened


def test_each_opening_that_reads_the_test_split_writes_one_ledger_line(tmp_path):
    ledger = tmp_path / "ledger.md"
    with holdout.final_report("nothing", ledger):
        pass  # opened, nothing read: no line
    assert not ledger.exists()
    with holdout.final_report("test captions of two families", ledger):
        captions.caption_pool("logic", "test")
        captions.caption_pool("arithmetic", "test")  # the same opening: still one line
    with holdout.final_report(ledger=ledger):
        captions.caption_pool("label", "test")
    lines = ledger.read_text().splitlines()
    assert lines[0] == "# Test-split ledger"
    entries = [line for line in lines if line.startswith("- ")]
    assert len(entries) == 2 and entries[0].endswith(": test captions of two families")
    assert entries[1].endswith(": test captions") and " UTC, commit " in entries[1]


def test_the_cli_writes_its_ledger_line(tmp_path):
    ledger = tmp_path / "cli-ledger.md"
    code, _, err = run_ved(
        "captions", "list", "--family", "label", "--split", "test", env={"VED_TEST_LEDGER": str(ledger)}
    )
    assert code == 0, err
    assert (
        ledger.read_text()
        .splitlines()[-1]
        .endswith("`ved captions list --family label --split test`: label captions of the test split, listed")
    )
