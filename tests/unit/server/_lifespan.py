"""An instance app with its lifespan entered (logs opened, TUF refresher started) and left."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from starlette.applications import Starlette

from sealtrail.server.instance import Instance


@contextlib.contextmanager
def running_instance_app(directory: str) -> Iterator[tuple[Instance, Starlette]]:
    """A fresh instance in ``directory`` (built-in issuer on) and its app, whose lifespan
    closes the logs it opened and stops its TUF refresher when the block ends."""
    instance = Instance.init(directory, builtin_issuer=True)
    app = instance.build_app()
    loop = asyncio.new_event_loop()
    lifespan = app.router.lifespan_context(app)
    loop.run_until_complete(lifespan.__aenter__())
    try:
        yield instance, app
    finally:
        loop.run_until_complete(lifespan.__aexit__(None, None, None))
        loop.close()
