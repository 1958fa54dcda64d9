"""Throw-away certificates for signing C2PA content credentials in tests: a root CA and a
signer certificate it issued (EC P-256, digital signature, e-mail protection usage)."""

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Wav2Lip tests")])


def _usage(signer):
    flags = dict.fromkeys(("content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
                           "encipher_only", "decipher_only"), False)
    return x509.KeyUsage(digital_signature=signer, key_cert_sign=not signer, crl_sign=not signer, **flags)


def write_signing_files(folder, valid_days=(-1, 30)):
    """(chain.pem, key.pem) in ``folder``: the signer's certificate then the root's, and the
    signer's private key; valid from ``valid_days[0]`` to ``valid_days[1]`` days from now."""
    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = (now + datetime.timedelta(days=days) for days in valid_days)
    root_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def certificate(subject, public_key, issuer, signer):
        builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
                   .public_key(public_key).serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(end)
                   .add_extension(x509.BasicConstraints(ca=not signer, path_length=None), critical=True)
                   .add_extension(_usage(signer), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))
        if signer:
            builder = (builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
                       .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
                                      critical=False))
        return builder.sign(root_key, hashes.SHA256())

    root = certificate("Test root", root_key.public_key(), "Test root", signer=False)
    leaf = certificate("Test signer", key.public_key(), "Test root", signer=True)
    chain, key_file = folder / "chain.pem", folder / "key.pem"
    chain.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, root)))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return chain, key_file
