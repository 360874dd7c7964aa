"""The searches over simulated worlds: seeded and parallel campaigns, PCT scheduling, the exhaustive
explorer, and the Hypothesis state machine that runs the engine against the reference model."""
