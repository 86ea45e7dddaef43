"""Integrations with web frameworks, each behind its extra.

Import the one you use; importing this package imports none of them:

- :mod:`helppet_recordings.integrations.fastapi` (the ``fastapi`` extra): error
  handlers, LocalStorage's upload and download routes, the JSON body limit and
  CORS for a FastAPI app, installed with one call.
"""
