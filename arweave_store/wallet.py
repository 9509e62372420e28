"""The service's Arweave wallet: an RSA key in a JWK file, and signing with it.

Signing is done here with ``cryptography`` (RSA-PSS, SHA-256, 32-byte salt, as
arweave-js does) rather than through arweave-python-client, whose import resets
SIGPIPE for the whole process and which cannot create a wallet at all.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from arweave_store.encoding import b64url, b64url_decode

KEY_BITS = 4096
PUBLIC_EXPONENT = 65537
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


class WalletError(Exception):
    """The wallet file is missing, unreadable or not an RSA JWK; the message says which."""


def _int_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def _b64_int(text: str) -> int:
    return int.from_bytes(b64url_decode(text), "big")


@dataclass(frozen=True)
class Wallet:
    key: rsa.RSAPrivateKey

    @property
    def owner_bytes(self) -> bytes:
        return _int_bytes(self.key.public_key().public_numbers().n)

    @property
    def owner(self) -> str:
        """The public modulus, as a transaction's ``owner`` field."""
        return b64url(self.owner_bytes)

    @property
    def address(self) -> str:
        return b64url(hashlib.sha256(self.owner_bytes).digest())

    def sign(self, message: bytes) -> bytes:
        return self.key.sign(message, _PSS, hashes.SHA256())

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            self.key.public_key().verify(signature, message, _PSS, hashes.SHA256())
        except Exception:  # cryptography raises InvalidSignature; any failure means "no"
            return False
        return True

    def to_jwk(self) -> dict[str, str]:
        numbers = self.key.private_numbers()
        public = numbers.public_numbers
        return {"kty": "RSA", "e": b64url(_int_bytes(public.e)), "n": b64url(_int_bytes(public.n)),
                "d": b64url(_int_bytes(numbers.d)), "p": b64url(_int_bytes(numbers.p)),
                "q": b64url(_int_bytes(numbers.q)), "dp": b64url(_int_bytes(numbers.dmp1)),
                "dq": b64url(_int_bytes(numbers.dmq1)), "qi": b64url(_int_bytes(numbers.iqmp))}

    @classmethod
    def from_jwk(cls, jwk: dict[str, str]) -> Wallet:
        try:
            if jwk.get("kty") != "RSA":
                raise WalletError("not an RSA key (kty must be RSA)")
            public = rsa.RSAPublicNumbers(_b64_int(jwk["e"]), _b64_int(jwk["n"]))
            p, q, d = _b64_int(jwk["p"]), _b64_int(jwk["q"]), _b64_int(jwk["d"])
            private = rsa.RSAPrivateNumbers(
                p, q, d,
                _b64_int(jwk["dp"]) if "dp" in jwk else rsa.rsa_crt_dmp1(d, p),
                _b64_int(jwk["dq"]) if "dq" in jwk else rsa.rsa_crt_dmq1(d, q),
                _b64_int(jwk["qi"]) if "qi" in jwk else rsa.rsa_crt_iqmp(p, q),
                public)
            return cls(private.private_key())
        except KeyError as exc:
            raise WalletError(f"the JWK has no {exc.args[0]!r} field (a private RSA key is needed)") from None
        except (ValueError, TypeError) as exc:
            raise WalletError(f"the JWK is not a valid RSA key: {exc}") from None


def generate_wallet() -> Wallet:
    return Wallet(rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=KEY_BITS))


def load_wallet(path: str | Path) -> Wallet:
    path = Path(path).expanduser()
    try:
        jwk = json.loads(path.read_text())
    except FileNotFoundError:
        raise WalletError(f"{path} does not exist (create one with `permachat arweave wallet create`)") from None
    except OSError as exc:
        raise WalletError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise WalletError(f"{path} is not a JSON (JWK) file") from None
    if not isinstance(jwk, dict):
        raise WalletError(f"{path} is not a JWK object")
    return Wallet.from_jwk(jwk)


def create_wallet(path: str | Path) -> Wallet:
    """Write a new RSA-4096 JWK at ``path`` (mode 0600); never overwrites a file."""
    path = Path(path).expanduser()
    wallet = generate_wallet()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise WalletError(f"{path} already exists; not overwriting a wallet") from None
    except OSError as exc:
        raise WalletError(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as fh:
        json.dump(wallet.to_jwk(), fh)
    return wallet
