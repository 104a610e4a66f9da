from conftest import assert_one_line, run_ved, ved_main


def test_captions_parse_prints_digits():
    code, out, err = run_ved("captions", "parse", "three plus two", "min nine five seven")
    assert code == 0 and out.split() == ["5", "5"]


def test_captions_parse_bad_caption_is_one_line_exit_2():
    code, out, err = run_ved("captions", "parse", "five", "thre plus two")
    assert code == 2 and out == ""
    assert err.strip().count("\n") == 0 and "did you mean 'three'" in err and "Traceback" not in err


def test_captions_list_prints_caption_tab_digit():
    code, out, err = run_ved("captions", "list", "--family", "arithmetic", "--split", "test", "-n", "5")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 5
    for line in lines:
        caption, digit = line.split("\t")
        code2, out2, _ = run_ved("captions", "parse", caption)
        assert out2.strip() == digit


def test_unknown_family_is_refused_by_argparse():
    code, out, err = run_ved("captions", "list", "--family", "poetry")
    assert code == 2 and "invalid choice" in err


def test_data_command_reports_where_mnist_is(mnist_data):
    code, out, err = run_ved("data", "--quiet")
    assert code == 0 and "MNIST verified" in out and "test: 10000 images" in out


def test_version():
    import ved

    code, out, err = run_ved("--version")
    assert code == 0 and out.strip() == f"ved {ved.__version__}"


def test_every_option_says_what_it_does():
    """`--help` of every command: each option's text says what it does, not only its default."""
    import argparse

    from ved.cli import parser

    bare = []

    def walk(p, path):
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, [*path, name])
            elif not (action.help or "").strip() or action.help.strip().startswith("(default"):
                bare.append((" ".join(path), action.option_strings or action.dest))

    walk(parser(), ["ved"])
    assert not bare, bare


def test_same_style_writes_the_captions_given_and_refuses_one_outside_the_grammar(tmp_path):
    import numpy as np

    out = tmp_path / "styles.npy"
    code, _, err = run_ved("sample", "--same-style", "seven plus eight", "five", "--out", str(out))
    assert code == 2 and err.count("\n") == 1 and "--same-style" in err and "Traceback" not in err
    assert "evaluates to 15" in err and not out.exists()
    code, _, err = run_ved(
        "sample", "--same-style", "five", "two plus five", "-n", "3", "--seed", "1", "--out", str(out)
    )
    assert code == 0, err
    rows = np.load(out)
    assert rows.shape == (3, 2, 28, 28) and rows.dtype == np.uint8
    assert not np.array_equal(rows[0, 0], rows[1, 0])  # each row its own handwriting


def test_commands_that_draw_nothing_start_without_torch():
    """`ved --help`, `--version` and `captions` import no torch (it takes seconds to load), as the
    server's no-matplotlib test checks its own imports."""
    import subprocess
    import sys

    for args in (
        ["--help"],
        ["--version"],
        ["captions", "parse", "five"],
        ["captions", "list", "-n", "1"],
        ["models"],
        ["data", "--quiet"],
    ):
        code = (
            f"import sys; from ved import cli\ntry: cli.main({args!r})\nexcept SystemExit: pass\n"
            "print('torch' in sys.modules)"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        assert done.stdout.strip().splitlines()[-1] == "False", (args, done.stdout)


def test_serve_on_a_busy_port_is_one_line_before_anything_claims_the_page_is_up():
    import socket

    from conftest import run_ved

    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        code, out, err = run_ved("serve", "--port", str(busy.getsockname()[1]), timeout=300)
    assert code == 2 and out == "" and err.count("\n") == 1 and "cannot listen there" in err, (out, err)


def test_models_marks_the_default():
    from conftest import ved_main

    code, out, _ = ved_main("models")
    assert code == 0 and "cvae-mixed (default)" in out
    assert "default: cvae-mixed" in ved_main("sample", "--help")[1]


def test_a_bug_in_ved_is_a_traceback_and_a_request_to_report_it_not_bad_input():
    """Only ved's own errors (VedError) are one line; anything else is a bug: its traceback, a line
    asking for a report, exit 1. VED_DEBUG=1 shows a refusal's traceback too. (The bug is planted:
    an internal function made to fail as a bug would.)"""
    import os
    import subprocess
    import sys

    planted = (
        "import sys; from ved import captions, cli\n"
        "def broken(*a, **k): raise TypeError('a bug')\n"
        "captions.check_caption = broken\n"
        "sys.exit(cli.main(['captions', 'parse', 'five']))"
    )
    done = subprocess.run([sys.executable, "-c", planted], capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" in done.stderr and "TypeError: a bug" in done.stderr
    assert "this is a bug in ved" in done.stderr.splitlines()[-1]
    refusal = [sys.executable, "-m", "ved", "captions", "parse", "thre"]
    quiet = subprocess.run(refusal, capture_output=True, text=True)
    assert quiet.returncode == 2 and quiet.stderr.count("\n") == 1
    loud = subprocess.run(refusal, capture_output=True, text=True, env={**os.environ, "VED_DEBUG": "1"})
    assert loud.returncode == 2 and "Traceback" in loud.stderr and "did you mean 'three'" in loud.stderr


def test_reproduces_new_options_refuse_bad_values_in_one_line_and_write_nothing(tmp_path):
    """--seeds, the job sizes and --slurm-partition are checked before anything runs or is written."""
    out = tmp_path / "study"
    cases = [
        (["--seeds", "0"], "argument --seeds: 0 is out of range; allowed: 1 to 20"),
        (["--seeds", "two"], "argument --seeds: 'two' is not a whole number"),
        (["--job-minutes", "0"], "argument --job-minutes: 0 is out of range"),
        (["--cluster", "ray"], "argument --cluster: invalid choice: 'ray'"),
        (["--slurm-partition", "gpu"], "--slurm-partition goes with --cluster slurm"),
    ]
    for args, message in cases:
        code, _, err = ved_main("reproduce", "--out", str(out), *args)
        assert_one_line(code, err, message)
        assert not out.exists()
