"""Services (L4): ASGI apps for the transparency log (and later CA, TSA, trust documents).

Wiring lives here: reading config, opening storage, building engines, mapping errors to
HTTP. Domain logic stays in the L2 packages.
"""
