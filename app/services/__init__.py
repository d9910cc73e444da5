"""Use cases: each owns its transaction, takes ids and an actor, raises domain errors."""
