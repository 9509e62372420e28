"""Browser tests of the uploads page reuse the arlocal fixtures of tests/arweave_store."""

from tests.arweave_store.conftest import (  # noqa: F401 - fixtures, found by pytest here
    arlocal,
    arweave_server,
    arweave_settings,
    service_wallet,
)
