"""Where the agent reconciles: plan (pure), executor (carries a plan out), loop (watch)."""
