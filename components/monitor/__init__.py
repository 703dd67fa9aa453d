"""monitor: drift of new data vs. the champion's training data, live F1, and the continual-learning decision."""
