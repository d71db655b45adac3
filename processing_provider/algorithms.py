"""Every algorithm class the provider offers (placeholder until the lead writes the algorithms)."""

ALGORITHMS = []
