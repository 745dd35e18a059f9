"""Built-in skills (dice, time), registered through the ``register_skills`` hook."""
