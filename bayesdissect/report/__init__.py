"""Show: findings in words, figures, the HTML report."""
