"""The deployment tests use the real Arweave node of the upload tests."""

from tests.arweave_store.conftest import arlocal, service_wallet  # noqa: F401  (fixtures)
