"""A seeded chaos harness: a real multi-process stack, a storm of faults, then the money checked."""
