"""The proxy's validation path for tests: `avalidate_digest` over the token's digest (issue 15 removed
`validate_token`/`avalidate_token`, which only tests and a bench called)."""

from asgiref.sync import async_to_sync

from tokens.models import token_digest
from tokens.validation import TokenCheck, avalidate_digest


def check_token(plaintext: str, *, kv=None) -> TokenCheck:
    return async_to_sync(avalidate_digest)(token_digest(plaintext), kv=kv)
