"""Privacy at ingest: client IPs truncated (IPv4 /24, IPv6 /48) or keyed-hashed; cookies dropped.

Runs on Arrow columns inside the file reader. Truncation is a vectorised regex for the usual
forms; the rare compressed IPv6 forms (`2001:db8::1`) go through `ipaddress` one by one.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

IP_MODES = ("none", "truncate", "hash")
_IPV4_HOST = r"(\d{1,3}\.\d{1,3}\.\d{1,3})\.\d{1,3}\b"  # no leading \b: lists are "a,%20b"
_IPV6_FULL = r"^([0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}):[0-9A-Fa-f:.]*$"


@dataclass(frozen=True)
class PrivacyOptions:
    ip_mode: str = "truncate"
    hash_key: bytes = b""
    keep_cookies: bool = False

    def __post_init__(self) -> None:
        if self.ip_mode not in IP_MODES:
            raise ValueError(f"ip mode must be one of {IP_MODES}, got {self.ip_mode!r}")
        if self.ip_mode == "hash" and not self.hash_key:
            raise ValueError("hashing client IPs needs a key (spark.cdnlake.ip.hash.secret)")


def truncate_ip(value: str) -> str:
    """One address to its network: IPv4 /24, IPv6 /48; anything else is left unchanged."""
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return value
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


def _truncate_column(values: pa.Array) -> pa.Array:
    done = pc.replace_substring_regex(values, _IPV4_HOST, r"\1.0")
    done = pc.replace_substring_regex(done, _IPV6_FULL, r"\1::")
    # Addresses whose first three groups are not all written out (`::` early) need real parsing.
    odd = pc.and_(pc.match_substring(done, "::"), pc.invert(pc.match_substring_regex(done, _IPV6_FULL[:-15] + "::$")))
    if not pc.any(pc.fill_null(odd, False)).as_py():
        return done
    fixed = [truncate_ip(v) if flag and v is not None else v
             for v, flag in zip(done.to_pylist(), pc.fill_null(odd, False).to_pylist(), strict=True)]  # fmt: skip
    return pa.array(fixed, pa.string())


def _hash_column(values: pa.Array, key: bytes) -> pa.Array:
    encoded = pc.dictionary_encode(values)
    hashed = [None if v is None else hmac.new(key, v.encode(), hashlib.sha256).hexdigest()[:32]
              for v in encoded.dictionary.to_pylist()]  # fmt: skip
    return pa.array(hashed, pa.string()).take(encoded.indices)


def apply_privacy(columns: dict[str, pa.Array], options: PrivacyOptions) -> None:
    """Rewrite c_ip, x_forwarded_for and cs_cookie in place according to the options."""
    if not options.keep_cookies:
        columns["cs_cookie"] = pa.nulls(len(columns["cs_cookie"]), pa.string())
    for name in ("c_ip", "x_forwarded_for"):
        if options.ip_mode == "truncate":
            columns[name] = _truncate_column(columns[name])
        elif options.ip_mode == "hash":
            columns[name] = _hash_column(columns[name], options.hash_key)
