"""A TUF repository for a self-hosted instance (L2): keys, signing, files on disk.

The repository distributes the instance's ``trusted_root.json`` and
``signing_config.v0.2.json`` the way Sigstore's own repositories do, so sigstore-python
(``trust-instance`` / ``--instance``), cosign (``initialize --mirror --root``) and
:mod:`sealtrail.trustroot.tuf_client` can bootstrap from a pinned ``root.json`` and refresh
securely. Metadata and signatures are made with python-tuf and securesystemslib.

Serve ``resolve(directory, path)`` at the repository URL: metadata at ``URL/<file>``,
targets at ``URL/targets/<sha256>.<name>``.
"""

from __future__ import annotations

from sealtrail.tufrepo._keys import KEY_ALGORITHMS, KEY_FILES, ROLES, RepoKeys
from sealtrail.tufrepo._repository import (
    DEFAULT_EXPIRY,
    MAX_TARGET_BYTES,
    MAX_TARGETS,
    METADATA_DIR,
    REFRESH_FRACTION,
    SIGSTORE_TARGETS,
    TARGETS_DIR,
    RoleStatus,
    TrustRepository,
    resolve,
)

__all__ = [
    "DEFAULT_EXPIRY",
    "KEY_ALGORITHMS",
    "KEY_FILES",
    "MAX_TARGETS",
    "MAX_TARGET_BYTES",
    "METADATA_DIR",
    "REFRESH_FRACTION",
    "ROLES",
    "RepoKeys",
    "RoleStatus",
    "SIGSTORE_TARGETS",
    "TARGETS_DIR",
    "TrustRepository",
    "resolve",
]
