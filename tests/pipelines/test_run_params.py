"""``--param`` values of a local run, typed as a cluster run types them.

On a cluster each ParallelFor item of ``workers`` must be an integer (the loop declares its
item NUMBER_INTEGER, and optimize's ``worker`` refuses anything else), so a local run takes
``workers`` only as a JSON list of integers too; the other parameters keep their types.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from pipelines.__main__ import main as pipelines_main
from pipelines.cli.run import coerce_params
from pipelines.continual import continual
from pipelines.local.arguments import local_arguments
from pipelines.mlops import mlops
from pipelines.settings import LocalSettings


@pytest.mark.parametrize("pipeline", [mlops, continual], ids=["mlops", "continual"])
def test_workers_param_becomes_a_list_of_integers(pipeline) -> None:
    params = coerce_params(pipeline, {"workers": "[0, 1, 2]", "trials_per_worker": "4", "margin": "0.01"})
    assert params == {"workers": [0, 1, 2], "trials_per_worker": 4, "margin": 0.01}
    assert all(type(item) is int for item in params["workers"])


@pytest.mark.parametrize(
    "value, message",
    [
        ('[0, "a"]', 'item "a" is not of type Integer'),
        ("[true]", "item true is not of type Integer"),
        ("[1.5]", "item 1.5 is not of type Integer"),
        ("2", "expected a JSON list"),
        ("[0,", "is not a valid List[Integer]"),
    ],
)
def test_workers_param_that_is_no_list_of_integers_is_refused(value: str, message: str) -> None:
    with pytest.raises(ValueError, match="parameter workers=") as refused:
        coerce_params(mlops, {"workers": value})
    assert message in str(refused.value)


def test_workers_flag_gives_integer_workers(tmp_path: Path) -> None:
    args = argparse.Namespace(trials=7, workers=3, source="sample")
    base = local_arguments("mlops", LocalSettings(stores=tmp_path), args, {})
    assert base["workers"] == [0, 1, 2] and base["trials_per_worker"] == 3 and base["expected_trials"] == 9


def test_run_refuses_string_workers_before_running_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KFP_MLOPS_WARM", "0")  # no fork server: nothing may start
    stores = tmp_path / "stores"
    code = pipelines_main(["run", "mlops", "--stores", str(stores), "--param", 'workers=["0", "1"]'])
    assert code == 2
    assert (
        'parameter workers=\'["0", "1"]\' is not a valid List[Integer]: item "0"' in capsys.readouterr().err
    )
    assert not any((stores / "runs").glob("*"))  # no task log: nothing ran
