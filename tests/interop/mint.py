"""Tokens minted by an independent implementation (PyJWT + cryptography), for the interop tests.

Usage: mint.py OUT.json --iss ISS --aud AUD

Generates fresh keys (RSA 2048, P-256, P-384, Ed25519 and a 64-byte HMAC secret), then writes one JSON
fixture:

    {
      "hmac_secret": "...",                  # 64 ASCII bytes, the HMAC key for HS256/384/512
      "jwks": {"keys": [...]},               # public keys; every key has a kid and an alg
      "cases": [
        {
          "alg": "RS256",
          "kid": "rs256",                    # null for HMAC (the secret is configured without a kid)
          "public_pem": "-----BEGIN ...",    # null for HMAC
          "valid": "<jws>",
          "valid_no_kid": "<jws>",           # same claims, no kid in the header (for PEM-configured keys)
          "tampered": {"flipped_signature": "<jws>", ...}
        }, ...
      ]
    }

The tampered variants are derived from the valid token by editing its bytes, never re-signed with the
right key: one flipped signature byte, an altered payload under the old signature, the header's alg
switched to another algorithm, the signature stripped, and (for public keys) the HS256 key-confusion
token signed with the public key PEM as an HMAC secret (CVE-2015-9235).
"""

import argparse
import base64
import hashlib
import hmac
import json
import secrets
import sys
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

HMAC_ALGS = ["HS256", "HS384", "HS512"]
RSA_ALGS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
# The algorithm written into the header by the "alg_switched" variant.
SWITCHED = {
    "HS256": "HS384",
    "HS384": "HS512",
    "HS512": "HS256",
    "RS256": "PS256",
    "RS384": "PS384",
    "RS512": "PS512",
    "PS256": "RS256",
    "PS384": "RS384",
    "PS512": "RS512",
    "ES256": "ES384",
    "ES384": "ES256",
    "ES512": "ES384",
    "EdDSA": "ES256",
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_pem(private_key) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def tampered(token: str, alg: str, pem: str | None) -> dict:
    header_b64, payload_b64, signature_b64 = token.split(".")
    out = {}

    sig = bytearray(b64url_decode(signature_b64))
    sig[len(sig) // 2] ^= 0x01
    out["flipped_signature"] = f"{header_b64}.{payload_b64}.{b64url(bytes(sig))}"

    payload = json.loads(b64url_decode(payload_b64))
    payload["sub"] = "mallory"
    payload["admin"] = True
    altered = b64url(json.dumps(payload, separators=(",", ":")).encode())
    out["altered_payload"] = f"{header_b64}.{altered}.{signature_b64}"

    header = json.loads(b64url_decode(header_b64))
    header["alg"] = SWITCHED[alg]
    switched = b64url(json.dumps(header, separators=(",", ":")).encode())
    out["alg_switched"] = f"{switched}.{payload_b64}.{signature_b64}"

    out["signature_stripped"] = f"{header_b64}.{payload_b64}."

    if pem is not None:
        # What a naive library accepts when it takes alg from the token and the PEM as the HMAC key.
        header = json.loads(b64url_decode(header_b64))
        header["alg"] = "HS256"
        signing_input = f"{b64url(json.dumps(header, separators=(',', ':')).encode())}.{payload_b64}"
        mac = hmac.new(pem.encode("ascii"), signing_input.encode("ascii"), hashlib.sha256).digest()
        out["hs256_with_public_pem"] = f"{signing_input}.{b64url(mac)}"
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--iss", required=True)
    parser.add_argument("--aud", required=True)
    args = parser.parse_args()

    now = int(time.time())
    claims = {
        "iss": args.iss,
        "aud": args.aud,
        "sub": "interop-user",
        "iat": now,
        "nbf": now - 5,
        "exp": now + 600,
        "jti": secrets.token_hex(8),
        "scope": "read write",
    }

    hmac_secret = secrets.token_urlsafe(48)  # 64 ASCII characters
    assert len(hmac_secret) == 64
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    p256_key = ec.generate_private_key(ec.SECP256R1())
    p384_key = ec.generate_private_key(ec.SECP384R1())
    p521_key = ec.generate_private_key(ec.SECP521R1())
    ed_key = ed25519.Ed25519PrivateKey.generate()

    # (alg, signing key, JWK of the public key or None for HMAC, public PEM or None)
    specs = [(alg, hmac_secret.encode("ascii"), None, None) for alg in HMAC_ALGS]
    rsa_jwk = RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True)
    specs += [(alg, rsa_key, rsa_jwk, public_pem(rsa_key)) for alg in RSA_ALGS]
    specs.append(("ES256", p256_key, ECAlgorithm.to_jwk(p256_key.public_key(), as_dict=True), public_pem(p256_key)))
    specs.append(("ES384", p384_key, ECAlgorithm.to_jwk(p384_key.public_key(), as_dict=True), public_pem(p384_key)))
    specs.append(("ES512", p521_key, ECAlgorithm.to_jwk(p521_key.public_key(), as_dict=True), public_pem(p521_key)))
    specs.append(("EdDSA", ed_key, OKPAlgorithm.to_jwk(ed_key.public_key(), as_dict=True), public_pem(ed_key)))

    keys, cases = [], []
    for alg, signing_key, jwk, pem in specs:
        kid = None
        if jwk is not None:
            # One JWK per algorithm, each bound to its alg by `alg`, so no key serves two algorithms.
            kid = alg.lower()
            keys.append({**jwk, "kid": kid, "alg": alg, "use": "sig"})
        headers = {"kid": kid} if kid else None
        valid = jwt.encode(claims, signing_key, algorithm=alg, headers=headers)
        valid_no_kid = jwt.encode(claims, signing_key, algorithm=alg)
        cases.append(
            {
                "alg": alg,
                "kid": kid,
                "public_pem": pem,
                "valid": valid,
                "valid_no_kid": valid_no_kid,
                "tampered": tampered(valid, alg, pem),
            }
        )

    fixture = {
        "generator": f"PyJWT {jwt.__version__}",
        "hmac_secret": hmac_secret,
        "claims": claims,
        "jwks": {"keys": keys},
        "cases": cases,
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(fixture, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
