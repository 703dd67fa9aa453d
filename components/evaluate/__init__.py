"""evaluate: compare a candidate model version with the champion on the same test rows; gate."""
