"""What every command shares: the error contract, the common flags, quiet start-up."""
import os
import subprocess
import sys

import pytest

from nst_keras.cli import common
from nst_keras.cli import decoupled as cli_decoupled
from nst_keras.cli import gatys as cli_gatys

COMMANDS = {"nst-gatys": cli_gatys, "nst-decoupled": cli_decoupled}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("prog", COMMANDS)
@pytest.mark.parametrize("argv, needles", [
    (["a.png", "b.png", "--size", "abc"], ["--size", "'abc'", "whole number"]),
    (["a.png", "b.png", "--seed", "1.5"], ["--seed", "'1.5'"]),
    (["a.png", "b.png", "--sise", "3"], ["--sise", "did you mean --size?"]),
    (["a.png", "b.png", "--size"], ["--size needs a value"]),
    ([], ["missing content", "CONTENT STYLE"]),
])
def test_argparse_errors_are_one_line_and_exit_2(prog, argv, needles, capsys):
    code = COMMANDS[prog].main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
    assert "usage:" not in err
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.parametrize("prog", COMMANDS)
def test_common_flags_on_every_command(prog, capsys):
    parser = COMMANDS[prog].build_parser()
    flags = {opt for action in parser._actions for opt in action.option_strings}
    assert {"-o", "--output", "-q", "--quiet", "--verbose", "--version", "--seed", "--size", "--model",
            "--weights"} <= flags
    args = parser.parse_args(["c.png", "s.png", "-q", "--verbose", "-o", "x.png"])
    assert args.quiet and args.verbose and args.output == "x.png"
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"{prog} 0.1.0"


def test_every_decoupled_field_has_a_flag_with_the_config_default():
    from nst_keras.decoupled import DecoupledConfig

    parser = cli_decoupled.build_parser()
    flags = {opt for action in parser._actions for opt in action.option_strings}
    assert set(cli_decoupled.flag_fields().values()) <= flags
    args = parser.parse_args(["c.png", "s.png"])
    assert common.config_from_args(DecoupledConfig, args) == DecoupledConfig()
    args = parser.parse_args(["c.png", "s.png", "--no-straight-through", "--segments", "2,1", "--layers",
                              "block1_conv1,block2_conv1", "--tolerance", "1e-3"])
    config = common.config_from_args(DecoupledConfig, args)
    assert (config.straight_through, config.segments, config.layers, config.tolerance) == \
        (False, (2, 1), ("block1_conv1", "block2_conv1"), 1e-3)


def _fresh_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}
    env["PYTHONPATH"] = ROOT
    return env


@pytest.mark.slow
def test_quiet_run_prints_nothing_from_tensorflow_or_keras(tmp_path):
    from conftest import write_image

    content, style = write_image(tmp_path / "c.png", 40, 48, 0), write_image(tmp_path / "s.png", 36, 36, 1)
    argv = [sys.executable, os.path.join(ROOT, "scripts", "gatys.py"), content, style, "-o", str(tmp_path / "o.png"),
            "--model", "vgg16", "--weights", "random", "--size", "32", "--iterations", "2", "--coarse-size", "0",
            "--content-layers", "block2_conv1", "--style-layers", "block1_conv1,block2_conv1", "-q"]
    done = subprocess.run(argv, capture_output=True, text=True, env=_fresh_env(), timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout == ""
    assert (tmp_path / "o.png").exists()


def test_verbose_leaves_tensorflow_logging_alone(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    common.quiet_start(verbose=True)
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    common.quiet_start(verbose=False)
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
