"""Server-rendered pages (Jinja2) for developers (`/`) and admins (`/admin/`), over the same services as the APIs.

`routes.routers` lists the routers `app.py` includes. Pages never import `store/`; they call `services/` and render
domain errors as form messages or an error page (never problem+json).
"""
