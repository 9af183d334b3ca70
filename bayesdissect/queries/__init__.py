"""What a fit answers: weights, effects, similarity, clusters, predictive checks,
LOO, adding a judge, what-if."""
