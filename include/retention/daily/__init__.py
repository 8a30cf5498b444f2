"""The daily purge of one category: plan (+ breaker) -> purge (mapped, per store) -> verify -> summary."""
