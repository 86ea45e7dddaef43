"""Repository backends: in-memory (always available) and SQLAlchemy (the ``sql`` extra)."""
