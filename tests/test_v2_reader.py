"""Standard logging v2 deliveries and the reader's hardening, on hand-made files (no Spark).

Every expected value below is written by hand from the record it comes from.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import random
import zlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spark_jobs.log_keys import escape_glob, listed_as, parse_log_key
from spark_jobs.raw_reader import ReaderOptions, file_batch, gunzip

UTC = dt.UTC
# One request, as v2 would deliver it (fields by name). 2025-02-16 10:15:30.250 UTC = 1739700930250 ms.
RECORD = {
    "date": "2025-02-16", "time": "10:15:30", "x-edge-location": "NRT57-P1", "sc-bytes": "51234",
    "c-ip": "192.0.2.10", "cs-method": "GET", "cs(Host)": "d111111abcdef8.cloudfront.net",
    "cs-uri-stem": "/v/seg_00001.ts", "sc-status": "206", "cs(Referer)": "-",
    "cs(User-Agent)": "Mozilla/5.0%20(iPhone)", "cs-uri-query": "-", "cs(Cookie)": "-",
    "x-edge-result-type": "Hit", "x-edge-request-id": "REQ1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa==",
    "x-host-header": "vod.example.jp", "cs-protocol": "https", "cs-bytes": "310", "time-taken": "0.012",
    "x-forwarded-for": "-", "ssl-protocol": "TLSv1.3", "ssl-cipher": "TLS_AES_128_GCM_SHA256",
    "x-edge-response-result-type": "Hit", "cs-protocol-version": "HTTP/2.0", "fle-status": "-",
    "fle-encrypted-fields": "-", "c-port": "51515", "time-to-first-byte": "0.004",
    "x-edge-detailed-result-type": "Hit", "sc-content-type": "video/MP2T", "sc-content-len": "50900",
    "sc-range-start": "0", "sc-range-end": "50899", "timestamp(ms)": "1739700930250", "c-country": "JP",
    "asn": "2516", "cache-behavior-path-pattern": "/v/*", "origin-fbl": "0.031", "origin-lbl": "0.045",
    "distribution-tenant-id": "-", "connection-id": "conn-7f3a",
}  # fmt: skip
V2_NAME = "/l/E1V2EXAMPLE.2025-02-16-10.abcd1234.gz"


def _check_record(row: dict, ts: dt.datetime = dt.datetime(2025, 2, 16, 10, 15, 30, tzinfo=UTC)) -> None:
    """The values RECORD must load as (checked by hand against RECORD above)."""
    assert row["reason"] is None
    assert row["ts"] == ts and row["hour"] == 10
    assert (row["sc_bytes"], row["sc_status"], row["status_class"]) == (51234, 206, 2)
    assert row["cs_user_agent"] == "Mozilla/5.0 (iPhone)" and row["cs_referer"] is None
    assert row["x_edge_response_result_type"] == "Hit" and row["sc_range_end"] == 50899
    assert (row["c_country"], row["asn"], row["cache_behavior_path_pattern"]) == ("JP", 2516, "/v/*")
    assert (row["origin_fbl"], row["origin_lbl"], row["timestamp_ms"]) == (0.031, 0.045, 1739700930250)
    assert row["distribution_tenant_id"] is None and row["connection_id"] == "conn-7f3a"
    assert row["distro"] == "e1v2example" and row["dt"] == "2025-02-16"


def _data_rows(name: str, content: bytes, **options: str) -> list[dict]:
    return file_batch(name, content, ReaderOptions(**options)).to_pylist()[1:]


def test_w3c_header_with_spaces_and_tabs_fields_in_another_order() -> None:
    fields = list(RECORD)[::-1]  # every field, in reverse order
    header = "#Fields:\t" + "  ".join(fields[:10]) + "\t" + " ".join(fields[10:])
    text = header + "\n" + "\t".join(RECORD[f] for f in fields) + "\n"
    (row,) = _data_rows(V2_NAME, gzip.compress(text.encode()))
    _check_record(row)


def test_w3c_without_date_and_time_takes_timestamp_ms() -> None:
    fields = [f for f in RECORD if f not in ("date", "time")]
    text = "#Fields: " + " ".join(fields) + "\n" + "\t".join(RECORD[f] for f in fields) + "\n"
    (row,) = _data_rows(V2_NAME, gzip.compress(text.encode()))
    _check_record(row, ts=dt.datetime(2025, 2, 16, 10, 15, 30, 250000, tzinfo=UTC))


def test_w3c_timestamp_seconds_only() -> None:
    fields = ["timestamp", "sc-status", "sc-bytes", "x-edge-request-id", "c-country"]
    text = "#Fields: " + " ".join(fields) + "\n1739700931.5\t200\t10\tR1\tTW\n1739750400\t200\t1\tR2\tTW\n"
    rows = _data_rows(V2_NAME, gzip.compress(text.encode()))
    assert rows[0]["ts"] == dt.datetime(2025, 2, 16, 10, 15, 31, 500000, tzinfo=UTC) and rows[0]["reason"] is None
    # 1739750400 is 2025-02-17 00:00:00: not the key's date.
    assert rows[1]["reason"] == "date differs from the file name's date 2025-02-16: '2025-02-17'"


def test_configured_delimiter_and_plain_headerless_default_selection() -> None:
    default = list(RECORD)[:33] + ["c-country", "cache-behavior-path-pattern"]
    plain = "|".join(RECORD[f] for f in default) + "\n"
    (row,) = _data_rows(V2_NAME, gzip.compress(plain.encode()), delimiter="|")
    assert row["reason"] is None and row["c_country"] == "JP" and row["cache_behavior_path_pattern"] == "/v/*"
    assert row["sc_bytes"] == 51234 and row["asn"] is None  # not in the default selection


def test_json_lines_by_keys_with_a_broken_record() -> None:
    good = json.dumps(RECORD)
    shuffled = json.dumps(dict(sorted(RECORD.items())))  # keys in another order
    text = "\n".join([good, "{not json", shuffled, ""]) + "\n"
    rows = _data_rows(V2_NAME, gzip.compress(text.encode()))
    assert [r["line_no"] for r in rows] == [1, 2, 3]
    _check_record(rows[0])
    assert rows[1]["reason"].startswith("invalid JSON record") and rows[1]["value"] == "{not json"
    _check_record(rows[2])


def test_parquet_with_mangled_names_found_by_content_not_extension() -> None:
    mangled = {
        "date": "date", "time": "time", "sc-bytes": "sc_bytes", "sc-status": "sc_status",
        "cs(User-Agent)": "cs_User_Agent", "cs(Referer)": "cs_Referer", "x-edge-location": "x_edge_location",
        "timestamp(ms)": "timestamp_ms", "c-country": "c_country", "x-edge-request-id": "x_edge_request_id",
        "x-edge-response-result-type": "x_edge_response_result_type", "asn": "asn",
    }  # fmt: skip
    table = pa.table({m: [RECORD[f], RECORD[f] if f != "sc-bytes" else "12x"] for f, m in mangled.items()})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    rows = _data_rows("/l/v2/E1V2EXAMPLE.2025-02-16-10.abcd1234.log.gz", buffer.getvalue())
    assert rows[0]["reason"] is None and rows[0]["cs_user_agent"] == "Mozilla/5.0 (iPhone)"
    assert (rows[0]["sc_bytes"], rows[0]["c_country"], rows[0]["x_edge_location"]) == (51234, "JP", "NRT57-P1")
    assert rows[0]["cs_referer"] is None and rows[0]["asn"] == 2516
    assert rows[1]["reason"] == "non-numeric sc-bytes: '12x'" and rows[1]["line_no"] == 2
    assert rows[1]["value"].split("\t")[2] == "12x"  # the rejected record's values, in file order


def test_corrupt_parquet_is_a_damaged_file() -> None:
    marker, *rows = file_batch(V2_NAME, b"PAR1" + b"\x00" * 50).to_pylist()
    assert rows == [] and marker["reason"].startswith("corrupt Parquet file")


# ---------------------------------------------------------------- hardening (issue 16, section 6)
LEGACY_HEADER = "#Version: 1.0\n#Fields: " + " ".join(list(RECORD)[:33])


def _legacy_line(i: int) -> str:
    return "\t".join({**RECORD, "x-edge-request-id": f"R{i:06d}"}[f] for f in list(RECORD)[:33])


@pytest.mark.parametrize("damage", ["flipped", "garbage"])
def test_corrupt_gzip_keeps_every_line_before_the_damage(damage: str) -> None:
    rng = random.Random(5)
    lines = [_legacy_line(i).replace("51234", str(rng.randrange(10**6))) for i in range(3000)]
    body = (LEGACY_HEADER + "\n" + "\n".join(lines) + "\n").encode()
    packed = bytearray(gzip.compress(body, mtime=0))
    at = len(packed) // 2
    if damage == "flipped":
        for i in range(at, at + 64):
            packed[i] ^= 0xFF
    else:
        packed[at : at + 64] = random.Random(1).randbytes(64)
    # Independent reference: what the bytes before the damage inflate to on their own.
    before = zlib.decompressobj(31).decompress(bytes(packed[:at]))
    complete = before.count(b"\n") - 2  # data lines wholly before the damage (2 header lines)
    assert complete > 1000
    marker, *rows = file_batch("/l/E1V2EXAMPLE.2025-02-16-10.u.gz", bytes(packed)).to_pylist()
    assert marker["reason"].startswith("corrupt gzip")
    loaded = [r["x_edge_request_id"] for r in rows if r["reason"] is None]
    assert loaded[:complete] == [f"R{i:06d}" for i in range(complete)]
    assert [r["sc_bytes"] for r in rows[:complete]] == [int(x.split("\t")[3]) for x in lines[:complete]]


def test_deflate_error_mid_stream_keeps_output_before_the_bad_block() -> None:
    body = "".join(f"line {i}\n" for i in range(100_000)).encode()
    packed = bytearray(gzip.compress(body, compresslevel=0, mtime=0))
    # Stored blocks: 10-byte gzip header, then per block 1 header byte, LEN, NLEN (its complement).
    first_len = int.from_bytes(packed[11:13], "little")
    packed[10 + 5 + first_len + 3] ^= 0xFF  # the second block's NLEN no longer matches its LEN
    with pytest.raises(zlib.error):  # inflating the member in one call loses all of it ...
        zlib.decompressobj(31).decompress(bytes(packed))
    inflated, error = gunzip(bytes(packed))
    assert error is not None and error.startswith("corrupt gzip")
    assert inflated == body[:first_len]  # ... the reader keeps the whole first block


def test_crlf_line_ends_with_a_reordered_header() -> None:
    fields = list(RECORD)[:33][::-1]
    text = "#Version: 1.0\r\n#Fields: " + " ".join(fields) + "\r\n" + "\t".join(RECORD[f] for f in fields) + "\r\n"
    (row,) = _data_rows("/l/E1V2EXAMPLE.2025-02-16-10.u.gz", gzip.compress(text.encode()))
    assert row["reason"] is None and row["sc_range_end"] == 50899 and row["ts"].hour == 10
    assert row["x_edge_location"] == "NRT57-P1"


def test_byte_order_mark_before_version_is_no_reject() -> None:
    text = "\ufeff" + LEGACY_HEADER + "\n" + _legacy_line(1) + "\n"
    (row,) = _data_rows("/l/E1V2EXAMPLE.2025-02-16-10.u.gz", gzip.compress(text.encode()))
    assert row["reason"] is None and row["line_no"] == 3


# ---------------------------------------------------------------- keys
HOUR_10 = ("e1abcdef2ghijk", "2025-02-16", 10)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("s3://b/AWSLogs/123456789012/CloudFront/E1ABCDEF2GHIJK.2025-02-16-10.a1b2.gz", HOUR_10),
        ("s3://b/logs/E1ABCDEF2GHIJK/2025/02/16/10/part-0001.parquet", HOUR_10),
        ("s3://b/p/DistributionId=E1ABCDEF2GHIJK/year=2025/month=02/day=16/hour=10/x.gz", HOUR_10),
        ("s3://b/p/distributionid=E1ABCDEF2GHIJK/YYYY=2025/MM=02/DD=16/HH=07/x", HOUR_10[:2] + (7,)),
        ("/land/E1ABCDEF2GHIJK/2025/02/16/abc.gz", ("e1abcdef2ghijk", "2025-02-16", None)),
        ("/land/cdn/2025/02/16/10/abc.gz", (None, "2025-02-16", 10)),
        ("/land/E1ABCDEF2GHIJK/abc.gz", ("e1abcdef2ghijk", None, None)),
        ("/land/E1ABCDEF2GHIJK/2025/02/31/abc.gz", ("e1abcdef2ghijk", None, None)),
        ("/land/E1ABCDEF2GHIJK/2025/02/16/_SUCCESS", None),
        ("/land/notes.txt", None),
    ],
)  # fmt: skip
def test_distribution_date_hour_from_name_or_key(key: str, expected: tuple | None) -> None:
    parsed = parse_log_key(key)
    assert (None if parsed is None else (parsed.distro, parsed.date, parsed.hour)) == expected


def test_listing_rule_for_keys_without_a_date() -> None:
    feb16, feb17 = dt.date(2025, 2, 16), dt.date(2025, 2, 17)
    dateless = "/land/E1ABCDEF2GHIJK/abc.gz"
    # Written on the 17th: read for the 17th and for the 16th (late delivery), not the 15th.
    assert listed_as(dateless, feb17, {"2025-02-17"}) == ("e1abcdef2ghijk", "2025-02-17", -1)
    assert listed_as(dateless, feb17, {"2025-02-16"}) == ("e1abcdef2ghijk", "2025-02-16", -1)
    assert listed_as(dateless, feb17, {"2025-02-15"}) is None
    assert listed_as("/land/cdn/2025/02/16/10/a.gz", feb17, {"2025-02-16"}) == ("unknown", "2025-02-16", 10)
    assert listed_as("/land/cdn/abc.gz", feb16, {"2025-02-16"}) is None


def test_a_row_of_a_dateless_key_is_checked_against_the_date_it_was_listed_for() -> None:
    text = "#Fields: " + " ".join(RECORD) + "\n" + "\t".join(RECORD.values()) + "\n"
    rows = _data_rows("/land/E1V2EXAMPLE/abc.gz", gzip.compress(text.encode()), default_date="2025-02-16")
    _check_record(rows[0])
    other = _data_rows("/land/E1V2EXAMPLE/abc.gz", gzip.compress(text.encode()), default_date="2025-02-17")
    assert other[0]["reason"] == "date differs from the file name's date 2025-02-17: '2025-02-16'"


def test_escape_glob_characters() -> None:
    assert escape_glob("file:/l/E1.2025-02-16-10.[a]*?{b}.gz") == "file:/l/E1.2025-02-16-10.\\[a\\]\\*\\?\\{b\\}.gz"


def test_json_values_that_are_not_strings_are_rejects() -> None:
    numbers = json.dumps({**RECORD, "sc-bytes": 51234})  # v2 writes every value as a string
    text = "\n".join([json.dumps(RECORD), numbers, "[1, 2]"]) + "\n"
    rows = _data_rows(V2_NAME, gzip.compress(text.encode()))
    assert [r["reason"] for r in rows] == ["invalid JSON record: values are not strings"] * 2 + [
        "invalid JSON record: not an object"]
    assert [r["value"] for r in rows][2] == "[1, 2]"
