"""The mode configs ship inside the package and a missing one is an error, never silent defaults."""

import pytest

from kerastl import config, fit
from kerastl.cli import run_cli
from kerastl.errors import UserError
from tests.helpers import ROOT



def test_every_mode_config_is_package_data_and_the_top_level_file():
    for mode in config.MODES:
        packaged = config.CONFIG_DIR / f"{mode}.yaml"
        assert packaged.is_file(), packaged
        assert packaged.read_bytes() == (ROOT / "configs" / f"{mode}.yaml").read_bytes()
    assert (ROOT / "kerastl" / "configs").resolve() == (ROOT / "configs").resolve()  # one copy in git


def test_the_cpu_section_of_the_packaged_config_is_applied():
    resolved = config.resolve("finetune", None, {}, accelerator=False)
    packaged = config.read_yaml(config.CONFIG_DIR / "finetune.yaml")
    assert resolved["img_size"] == packaged["cpu"]["img_size"] and resolved["lr"] == packaged["lr"]


def test_a_missing_mode_config_is_one_line_not_defaults(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(config, "CONFIG_DIR", tmp_path)
    with pytest.raises(UserError, match="finetune config .*finetune.yaml is missing"):
        config.resolve("finetune", None, {}, accelerator=False)
    argv = ["--mode", "mlp", "--epochs", "1", "--output-dir", str(tmp_path / "runs")]
    assert run_cli("kerastl.fit", lambda: fit.main(argv)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mlp config" in err[0] and "--config FILE" in err[0], err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_cache_features_is_no_longer_a_config_key():
    assert "cache_features" not in config.DEFAULTS
    with pytest.raises(UserError, match="unknown config key 'cache_features'"):
        config.check({"cache_features": True}, "test")


def test_run_backends_runs_everything_under_tensorflow_and_the_contract_under_the_others():
    from tests.run_backends import BACKENDS, EVERY_BACKEND, pytest_args

    assert BACKENDS[0] == "tensorflow" and EVERY_BACKEND == "every_backend"
    assert pytest_args(["-x"], first=True) == ["-x"]
    assert pytest_args(["-x"], first=False) == ["-x", "-m", "every_backend"]
    assert pytest_args(["-m", "not slow", "-x"], first=False) == ["-m", "(not slow) and every_backend", "-x"]
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"every_backend: ' in pyproject and '"slow: ' in pyproject  # registered, so a typo in a mark is caught


def test_run_backends_runs_one_worker_per_core_and_caches_jax_compilations(monkeypatch):
    from tests.run_backends import MAX_WORKERS, session_env, worker_args

    assert worker_args([], cpus=2) == ["-n", "2", "--dist", "loadfile"]  # files, not tests: module fixtures built once
    assert worker_args(["-x"], cpus=64) == ["-n", str(MAX_WORKERS), "--dist", "loadfile"] and MAX_WORKERS == 4
    assert worker_args([], cpus=1) == [] and worker_args(["-n", "0"], cpus=2) == [] and worker_args(["-p", "no:xdist"], cpus=2) == []
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    jax = session_env("jax", "/tmp/cache")
    assert jax["KERAS_BACKEND"] == "jax" and jax["JAX_COMPILATION_CACHE_DIR"] == "/tmp/cache"
    assert jax["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] == "0"  # every compilation, however short (JAX: 1 s and up)
    torch = session_env("torch", "/tmp/cache")
    assert torch["KERAS_BACKEND"] == "torch" and "JAX_COMPILATION_CACHE_DIR" not in torch
