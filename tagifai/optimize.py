"""Hyperparameter search: an Optuna objective that maximizes validation F1.

Pruning sees the same metric the study optimizes: each epoch reports validation F1 and
the trial's value is the F1 of its last epoch. The test split never reaches a trial.

The feature family (TF-IDF, sentence embeddings, both) is a parameter like any other, so
validation chooses it. The embeddings of the train and validation rows are computed once,
before the first trial that needs them, and every later trial reads them from one cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import optuna
import pandas as pd

from tagifai import features
from tagifai.config import SearchSpace, TrainParams
from tagifai.data import LabelEncoder
from tagifai.train import train

if TYPE_CHECKING:
    from tagifai.embeddings import EmbeddingCache

# Called with (trial, params, value, model) after each completed trial: tracking hooks.
TrialHook = Callable[[optuna.trial.Trial, TrainParams, float, Any], None]


def distributions(space: SearchSpace) -> dict[str, optuna.distributions.BaseDistribution]:
    """The search space as Optuna distributions (what `suggest_params` samples from)."""
    return {
        "features": optuna.distributions.CategoricalDistribution(list(space.features)),
        "alpha": optuna.distributions.FloatDistribution(*space.alpha, log=True),
        "analyzer": optuna.distributions.CategoricalDistribution(list(space.analyzers)),
        "ngram_max_range": optuna.distributions.IntDistribution(*space.ngram_max_range),
        "learning_rate": optuna.distributions.FloatDistribution(*space.learning_rate, log=True),
        "power_t": optuna.distributions.FloatDistribution(*space.power_t),
    }


def suggest_params(trial: optuna.trial.BaseTrial, base: TrainParams, space: SearchSpace) -> TrainParams:
    return base.with_(
        features=trial.suggest_categorical("features", list(space.features)),
        alpha=trial.suggest_float("alpha", *space.alpha, log=True),
        analyzer=trial.suggest_categorical("analyzer", list(space.analyzers)),
        ngram_max_range=trial.suggest_int("ngram_max_range", *space.ngram_max_range),
        learning_rate=trial.suggest_float("learning_rate", *space.learning_rate, log=True),
        power_t=trial.suggest_float("power_t", *space.power_t),
    )


def add_fixed_trial(
    study: optuna.Study,
    objective: Callable[[optuna.trial.Trial], float],
    params: dict[str, Any],
    space: SearchSpace | None = None,
    base: TrainParams | None = None,
) -> optuna.trial.FrozenTrial:
    """Evaluate `params` and record them as a finished trial of `study`.

    Used to seed a study with a known-good configuration. Unlike `enqueue_trial`, no
    WAITING trial exists that two parallel workers could both pick up (sqlite storages
    cannot hand one out atomically). Searched params that `params` leaves out take
    `base`'s values (the lesson's defaults).
    """
    space_dists = distributions(space or SearchSpace())
    defaults = (base or TrainParams()).to_dict()
    params = {**{k: defaults[k] for k in space_dists}, **params}
    fixed = optuna.trial.FixedTrial(params)
    value = objective(fixed)  # type: ignore[arg-type]
    trial = optuna.trial.create_trial(
        params=params,
        distributions={k: v for k, v in space_dists.items() if k in params},
        value=value,
        user_attrs=dict(fixed.user_attrs),
    )
    study.add_trial(trial)
    return study.get_trials(deepcopy=False)[-1]


# The known-good params a study starts from: the lesson's defaults, on each of these feature
# families that the space offers (TF-IDF alone, then TF-IDF with embeddings).
WARM_START_FAMILIES = ("tfidf", "both")


def warm_start(
    study: optuna.Study,
    objective: Callable[[optuna.trial.Trial], float],
    space: SearchSpace | None = None,
    limit: int | None = None,
) -> Iterator[optuna.trial.FrozenTrial]:
    """Add the warm-start trials (at most `limit`) to `study`, yielding each once it finished.

    The study's best is then never worse, on validation, than the known-good configuration.
    """
    space = space or SearchSpace()
    families = [f for f in WARM_START_FAMILIES if f in space.features]
    for family in families[:limit]:
        yield add_fixed_trial(study, objective, {"features": family}, space)


def make_objective(
    train_df: pd.DataFrame,
    val_df: pd.DataFrame,
    base: TrainParams | None = None,
    space: SearchSpace | None = None,
    label_encoder: LabelEncoder | None = None,
    on_trial: TrialHook | None = None,
    embeddings: EmbeddingCache | None = None,
) -> Callable[[optuna.trial.Trial], float]:
    """The objective: validation F1 of a model trained with the trial's params.

    `embeddings` is the cache every trial's embedding block comes from; without one, a
    cache on the process's shared encoder is made here (once, for all trials).
    """
    base = base or TrainParams()
    space = space or SearchSpace()
    encoder = label_encoder or LabelEncoder.fit(pd.concat([train_df["tag"], val_df["tag"]]))
    cache: list[EmbeddingCache] = [embeddings] if embeddings is not None else []

    def embedding_cache() -> EmbeddingCache:
        if not cache:
            from tagifai.embeddings import EmbeddingCache

            cache.append(EmbeddingCache())
        if not len(cache[0]):
            # Every row this study sees, in one batched pass.
            cache[0].embed(list(train_df["text"]) + list(val_df["text"]))
        return cache[0]

    def objective(trial: optuna.trial.Trial) -> float:
        params = suggest_params(trial, base, space)
        rows = embedding_cache() if features.uses_embeddings(params.features) else None

        def report(epoch: int, val_f1: float) -> None:
            trial.report(val_f1, step=epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch} with val F1 {val_f1:.4f}")

        model = train(train_df, val_df, params, encoder, on_epoch=report, embeddings=rows)
        value = model.history[-1]["val_f1"]
        trial.set_user_attr("threshold", model.threshold)
        if on_trial is not None:
            on_trial(trial, params, value, model)
        return value

    return objective


def create_study(
    study_name: str,
    storage: str | optuna.storages.BaseStorage | None = None,
    seed: int = 0,
    startup_trials: int = 5,
) -> optuna.Study:
    """A maximizing study (shared when `storage` is an RDB URL) with a median pruner.

    Each parallel worker passes its own `seed` so workers do not propose the same points.
    """
    return optuna.create_study(
        study_name=study_name,
        storage=storage,
        direction="maximize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=5),
    )


def best_params(study: optuna.Study, base: TrainParams | None = None) -> TrainParams:
    """The base params updated with the best trial's values."""
    return (base or TrainParams()).with_(**study.best_trial.params)
