"""tagifai: the Made With ML tag classifier (TF-IDF + SGD) as pure functions.

No kfp, no environment reads: callers pass paths, frames and URIs explicitly.
"""

__all__ = ["config", "data", "datasets", "evaluate", "optimize", "predict", "sources", "tracking", "train"]
