"""The certificate authority of a self-hosted instance (Fulcio v2 compatible).

- :mod:`sealtrail.ca.keys`: create, save and load the CA root/intermediate and CT log keys;
- :mod:`sealtrail.ca.ctlog`: the in-process CT log that signs SCTs;
- :mod:`sealtrail.ca.token_verifier`: OIDC identity token validation (issuers, JWKS, claims);
- :mod:`sealtrail.ca.identities`: the declarative claim -> SAN/extension table per issuer type;
- :mod:`sealtrail.ca.authority`: requests (CSR, proof of possession) and certificate issuance.

No network I/O: token validation takes a ``fetch_json`` callable (see
``sealtrail.server.ca_api.make_fetch_json`` for the HTTP one).
"""

from sealtrail.ca.authority import CertificateAuthority, embedded_sct_response
from sealtrail.ca.ctlog import CTLog
from sealtrail.ca.identities import IDENTITY_TYPES, ClaimExtension, IdentityType, Principal, San
from sealtrail.ca.keys import CAMaterial, create_ca, create_ct_key, load_ca, load_ct_key
from sealtrail.ca.token_verifier import IssuerConfig, TokenVerifier

__all__ = [
    "CAMaterial",
    "CTLog",
    "CertificateAuthority",
    "ClaimExtension",
    "IDENTITY_TYPES",
    "IdentityType",
    "IssuerConfig",
    "Principal",
    "San",
    "TokenVerifier",
    "create_ca",
    "create_ct_key",
    "embedded_sct_response",
    "load_ca",
    "load_ct_key",
]
