"""compose: the retraining set: previous training data + new labeled rows, balanced, with a fixed eval set held out."""
