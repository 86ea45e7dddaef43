"""The worked FastAPI adapter: ``uvicorn examples.fastapi_app.main:app``.

Routing, authentication and error mapping only; everything else is the package.
"""
