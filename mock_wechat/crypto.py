"""WeChat's message encryption (WXBizMsgCrypt), the one part the mock takes from the service.

Everything else the mock reads from the documents itself (see ``protocol``).

The official test vectors pin it byte for byte (``tests/service/wechat/test_crypto.py``
checks them), so there is no reading left for the two sides to share by mistake.
"""

from __future__ import annotations

# The service's crypto, on purpose and alone: the official test vectors pin it byte for
# byte (tests/service/wechat/test_crypto.py). Everything else the mock reads on its own.
from service.wechat.crypto import (
    AppIdMismatchError,
    CryptoError,
    IllegalAesKeyError,
    MessageCrypto,
    SignatureError,
    decode_aes_key,
)

__all__ = [
    "AppIdMismatchError",
    "CryptoError",
    "IllegalAesKeyError",
    "MessageCrypto",
    "SignatureError",
    "decode_aes_key",
]
