"""CA key material: the certificates' CA profile, and safe save/load of keys."""

from __future__ import annotations

import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sealtrail.ca.keys import (
    CAMaterial,
    create_ca,
    create_ct_key,
    load_ca,
    load_certificate,
    load_ct_key,
    load_private_key,
    save_ct_key,
    write_private_key,
)
from sealtrail.errors import ConfigInvalidError, KeyMalformedError
from tests.unit.ca._support import NOW


@pytest.fixture(scope="module")
def material() -> CAMaterial:
    return create_ca("example.org", "Example CA", now=NOW)


def dirs(tmp_path: Path) -> tuple[Path, Path]:
    keys, certs = tmp_path / "keys", tmp_path / "certs"
    keys.mkdir(mode=0o700)
    certs.mkdir()
    return keys, certs


def test_root_profile(material: CAMaterial) -> None:
    root = material.root_cert
    assert root.subject == root.issuer
    assert root.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "example.org"
    assert root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Example CA"
    assert isinstance(root.public_key(), ec.EllipticCurvePublicKey)
    assert root.public_key().curve.name == "secp384r1"
    assert isinstance(root.signature_hash_algorithm, hashes.SHA384)
    constraints = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 1
    usage = root.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and not usage.value.digital_signature
    ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = root.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    root.verify_directly_issued_by(root)
    assert root.not_valid_after_utc - root.not_valid_before_utc >= timedelta(days=3650)
    assert root.not_valid_before_utc <= NOW


def test_intermediate_profile(material: CAMaterial) -> None:
    inter, root = material.intermediate_cert, material.root_cert
    inter.verify_directly_issued_by(root)
    assert inter.public_key().curve.name == "secp384r1"
    constraints = inter.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    assert inter.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    eku = inter.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert not eku.critical and list(eku.value) == [ExtendedKeyUsageOID.CODE_SIGNING]
    aki = inter.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    root_ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == root_ski.digest
    assert inter.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value == \
        x509.SubjectKeyIdentifier.from_public_key(material.intermediate_key.public_key())
    assert material.chain == (inter, root)


@pytest.mark.parametrize("args, match", [
    (("", "cn"), "organization"), (("o", " "), "common name"),
])
def test_create_ca_arguments(args: tuple[str, str], match: str) -> None:
    with pytest.raises(ConfigInvalidError, match=match):
        create_ca(*args)
    with pytest.raises(ConfigInvalidError, match="validity"):
        create_ca("o", "cn", validity=timedelta(0))


def test_ct_key_is_p256() -> None:
    assert create_ct_key().curve.name == "secp256r1"


def test_save_and_load(tmp_path: Path, material: CAMaterial) -> None:
    keys, certs = dirs(tmp_path)
    material.save(keys, certs, passphrase=b"correct horse")
    for name in ("ca-root.pem", "ca-intermediate.pem"):
        assert stat.S_IMODE(os.stat(keys / name).st_mode) == 0o600
        assert b"ENCRYPTED PRIVATE KEY" in (keys / name).read_bytes()
        assert stat.S_IMODE(os.stat(certs / name).st_mode) == 0o644
    loaded = load_ca(keys, certs, passphrase=b"correct horse")
    assert loaded.root_key is None  # not needed to serve
    assert loaded.chain == material.chain
    assert loaded.intermediate_key.private_numbers() == material.intermediate_key.private_numbers()
    full = load_ca(keys, certs, passphrase=b"correct horse", with_root_key=True)
    assert full.root_key is not None
    assert full.root_key.private_numbers() == material.root_key.private_numbers()


def test_save_never_overwrites(tmp_path: Path, material: CAMaterial) -> None:
    keys, certs = dirs(tmp_path)
    material.save(keys, certs)
    before = (keys / "ca-intermediate.pem").read_bytes()
    with pytest.raises(ConfigInvalidError, match="refusing to overwrite"):
        material.save(keys, certs)
    assert (keys / "ca-intermediate.pem").read_bytes() == before


def test_wrong_or_missing_passphrase(tmp_path: Path, material: CAMaterial) -> None:
    keys, certs = dirs(tmp_path)
    material.save(keys, certs, passphrase=b"secret")
    with pytest.raises(KeyMalformedError, match="passphrase is wrong"):
        load_ca(keys, certs, passphrase=b"wrong")
    with pytest.raises(KeyMalformedError):
        load_ca(keys, certs)


def test_key_readable_by_others_is_refused(tmp_path: Path, material: CAMaterial) -> None:
    keys, certs = dirs(tmp_path)
    material.save(keys, certs)
    os.chmod(keys / "ca-intermediate.pem", 0o644)
    with pytest.raises(ConfigInvalidError, match="readable by others"):
        load_ca(keys, certs)


def test_mismatched_files_are_refused(tmp_path: Path, material: CAMaterial) -> None:
    keys, certs = dirs(tmp_path)
    other = create_ca("o", "other")
    material.save(keys, certs)
    (keys / "ca-intermediate.pem").unlink()
    write_private_key(keys / "ca-intermediate.pem", other.intermediate_key)
    with pytest.raises(ConfigInvalidError, match="does not match"):
        load_ca(keys, certs)
    (certs / "ca-root.pem").unlink()
    (certs / "ca-root.pem").write_bytes(other.root_cert.public_bytes(serialization.Encoding.PEM))
    (keys / "ca-intermediate.pem").unlink()
    write_private_key(keys / "ca-intermediate.pem", material.intermediate_key)
    with pytest.raises(ConfigInvalidError, match="not issued by the CA root"):
        load_ca(keys, certs)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    keys, certs = dirs(tmp_path)
    with pytest.raises(ConfigInvalidError, match="missing"):
        load_ca(keys, certs)
    (certs / "bad.pem").write_bytes(b"not a certificate")
    with pytest.raises(ConfigInvalidError, match="not a PEM certificate"):
        load_certificate(certs / "bad.pem")
    (certs / "big.pem").write_bytes(b"x" * (300 * 1024))
    with pytest.raises(ConfigInvalidError, match="too large"):
        load_certificate(certs / "big.pem")
    bad_key = keys / "bad.pem"
    fd = os.open(bad_key, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    os.close(fd)
    with pytest.raises(KeyMalformedError, match="does not parse"):
        load_private_key(bad_key)


def test_empty_passphrase_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigInvalidError, match="passphrase"):
        write_private_key(tmp_path / "k.pem", create_ct_key(), passphrase=b"")


def test_ct_key_save_and_load(tmp_path: Path) -> None:
    keys, _ = dirs(tmp_path)
    key = create_ct_key()
    save_ct_key(keys, key, passphrase=b"pw")
    assert stat.S_IMODE(os.stat(keys / "ctlog.pem").st_mode) == 0o600
    assert load_ct_key(keys, passphrase=b"pw").private_numbers() == key.private_numbers()


def test_ct_key_must_be_p256(tmp_path: Path) -> None:
    keys, _ = dirs(tmp_path)
    write_private_key(keys / "ctlog.pem", ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(KeyMalformedError, match="P-256"):
        load_ct_key(keys)
