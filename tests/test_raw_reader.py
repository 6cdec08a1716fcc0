"""The file reader and Arrow parser on hand-made inputs (no Spark)."""

from __future__ import annotations

import gzip

import pyarrow as pa

from spark_jobs.arrow_parse import percent_decode
from spark_jobs.raw_reader import ReaderOptions, file_batch, gunzip, parse_file_name
from spark_jobs.schema import LOG_FIELDS, snake

HEADER_33 = "#Fields: " + " ".join(LOG_FIELDS)


def _line(**values: str) -> str:
    """A 33-field line; keyword names are the snake_case column names (cs_cookie, sc_bytes...)."""
    row = {snake(name): "-" for name in LOG_FIELDS}
    row.update({"date": "2024-05-01", "time": "13:37:00", "sc_bytes": "100", "sc_status": "200"})
    unknown = set(values) - set(row)
    assert not unknown, unknown
    row.update(values)
    return "\t".join(row[snake(name)] for name in LOG_FIELDS)


def test_parse_file_name() -> None:
    assert parse_file_name("s3://b/x/E2ABC.2024-05-01-13.a1b2c3.gz") == ("e2abc", "2024-05-01", 13)
    assert parse_file_name("/tmp/E2ABC.2024-05-01.gz") is None
    assert parse_file_name("/tmp/notes.txt") is None


def test_gunzip_truncated_keeps_lines_before_damage() -> None:
    body = "".join(f"line {i}\n" for i in range(5000)).encode()
    damaged = gzip.compress(body)[:-2000]
    data, error = gunzip(damaged)
    assert error is not None and "truncated" in error
    assert 0 < len(data) < len(body) and body.startswith(data)


def test_gunzip_not_gzip_and_zero_bytes_and_concatenated() -> None:
    assert gunzip(b"") == (b"", "zero-byte file (not gzip)")
    assert gunzip(b"hello")[1] == "not a gzip file (bad magic bytes)"
    assert gunzip(gzip.compress(b"a\n") + gzip.compress(b"b\n")) == (b"a\nb\n", None)


def test_repeated_header_and_reordered_fields() -> None:
    # A second header mid-file declares a different order; its lines are mapped by name.
    reordered = "#Fields: time date sc-status sc-bytes"
    text = "\n".join(["#Version: 1.0", HEADER_33, _line(), reordered, "13:38:00\t2024-05-01\t404\t7", ""])
    rows = file_batch("/l/EX.2024-05-01-13.u.gz", gzip.compress(text.encode())).to_pylist()[1:]
    assert [r["line_no"] for r in rows] == [3, 5]
    assert [r["reason"] for r in rows] == [None, None]
    second = rows[1]
    assert second["ts"].isoformat() == "2024-05-01T13:38:00+00:00"
    assert (second["sc_bytes"], second["sc_status"], second["x_edge_location"]) == (7, 404, None)


def test_invalid_utf8_is_rejected_with_bytes_kept() -> None:
    raw = (HEADER_33 + "\n").encode() + _line(cs_uri_stem="/a\xffb").encode("latin-1") + b"\n"
    (row,) = file_batch("/l/EX.2024-05-01-13.u.gz", gzip.compress(raw)).to_pylist()[1:]
    assert row["reason"] == "invalid UTF-8 bytes"
    assert "\\xff" in row["value"]


def test_percent_decode_once_and_twice() -> None:
    assert percent_decode("Mozilla/5.0%20(X11)") == "Mozilla/5.0 (X11)"
    assert percent_decode("Mozilla/5.0%2520(X11)") == "Mozilla/5.0 (X11)"
    # `+` is data, not a space; a single-encoded `%2541` stays `%41` after the one decode.
    assert percent_decode("a%2520+b") == "a +b"
    assert percent_decode("100%25%20off") == "100% off"
    assert percent_decode("bad%zzescape") == "bad%zzescape"


def _batch(lines: list[str], header: str = HEADER_33) -> pa.RecordBatch:
    text = "\n".join([header, *lines, ""])
    return file_batch("/l/EX.2024-05-01-13.u.gz", gzip.compress(text.encode()))


def test_typed_columns_and_reasons() -> None:
    lines = [
        _line(sc_status="000", sc_bytes="5"),
        _line(sc_bytes="-12"),
        _line(sc_bytes="12x"),
        _line(time="25:61:00"),
        _line(date="2024-05-02"),
        _line() + "\t",  # one extra empty field: accepted
        _line() + "\tjunk",  # one extra non-empty field: rejected
        "\t".join(["2024-05-01"] * 10),
        "\t".join(["2024-05-01"] * 40),
    ]
    rows = _batch(lines).to_pylist()
    marker, data = rows[0], rows[1:]
    assert marker["line_no"] is None and marker["reason"] is None and len(marker["value"]) == 64
    assert data[0]["reason"] is None and data[0]["sc_status"] == 0 and data[0]["status_class"] is None
    assert data[1]["reason"] == "negative sc-bytes: '-12'"
    assert data[2]["reason"] == "non-numeric sc-bytes: '12x'"
    assert data[3]["reason"] == "unparseable date/time"
    assert data[4]["reason"] == "date differs from the file name's date 2024-05-01: '2024-05-02'"
    assert data[5]["reason"] is None and data[5]["hour"] == 13 and data[5]["sc_bytes"] == 100
    assert data[6]["reason"] == "column count check: header declares 33 fields, line has 34"
    assert data[7]["reason"] == "column count check: header declares 33 fields, line has 10"
    assert data[8]["reason"] == "column count check: header declares 33 fields, line has 40"
    # Raw text is kept for rejected lines only.
    assert data[0]["value"] is None and data[6]["value"].endswith("\tjunk")


def test_short_header_leaves_undeclared_fields_null() -> None:
    header = "#Fields: " + " ".join(LOG_FIELDS[:18])
    line = "\t".join(_line().split("\t")[:18])
    row = _batch([line], header).to_pylist()[1]
    assert row["reason"] is None
    assert row["time_taken"] is None and row["ssl_protocol"] is None and row["sc_range_end"] is None


def test_privacy_truncate_hash_and_cookies() -> None:
    from spark_jobs.privacy import PrivacyOptions

    lines = [_line(c_ip="203.0.113.77", x_forwarded_for="198.51.100.9,%20192.0.2.1", cs_cookie="sid=abc"),
             _line(c_ip="2001:db8:85a3:8d3:1319:8a2e:370:7348"), _line(c_ip="2001:db8::1")]  # fmt: skip
    text = gzip.compress("\n".join([HEADER_33, *lines, ""]).encode())
    rows = file_batch("/l/EX.2024-05-01-13.u.gz", text, ReaderOptions(PrivacyOptions())).to_pylist()[1:]
    assert [r["c_ip"] for r in rows] == ["203.0.113.0", "2001:db8:85a3::", "2001:db8::"]
    assert rows[0]["x_forwarded_for"] == "198.51.100.0,%20192.0.2.0"
    assert rows[0]["cs_cookie"] is None
    keyed = ReaderOptions(PrivacyOptions("hash", b"k", True))
    hashed = file_batch("/l/EX.2024-05-01-13.u.gz", text, keyed).to_pylist()[1:]
    import hashlib
    import hmac

    assert hashed[0]["c_ip"] == hmac.new(b"k", b"203.0.113.77", hashlib.sha256).hexdigest()[:32]
    assert hashed[0]["cs_cookie"] == "sid=abc"


def test_ipv6_truncation_matches_ipaddress_and_covers_lists() -> None:
    """The hand-written /48 (plain hex groups) equals ipaddress's on every form; lists keep separators."""
    import ipaddress
    import random

    from spark_jobs.privacy import _truncate_column

    rng = random.Random(7)
    forms = ["::", "::1", "2001:db8::", "::ffff:192.0.2.1", "fe80::1%eth0", "not-an-ip", "2001:db8::1::2"]
    for _ in range(2000):
        groups = [rng.choice([0, 0, 1, 0xDB8, 0xFFFF, rng.randrange(65536)]) for _ in range(8)]
        address = ipaddress.IPv6Address(":".join(f"{g:x}" for g in groups))
        forms += [str(address), address.exploded, address.exploded.upper()]

    def expected(value: str) -> str:
        try:
            return str(ipaddress.ip_network(f"{ipaddress.ip_address(value)}/48", strict=False).network_address)
        except ValueError:
            return value

    got = _truncate_column(pa.array(forms, pa.string())).to_pylist()
    assert got == [expected(v) for v in forms]
    listed = _truncate_column(pa.array(["2001:db8:85a3::1,%20203.0.113.9, 2001:0DB8:0:0:1::1", None])).to_pylist()
    assert listed == ["2001:db8:85a3::,%20203.0.113.0, 2001:db8::", None]


def test_column_counts_in_one_read_keep_line_order_and_text() -> None:
    """The tokenizer skips wrong-count lines in Arrow's reader; an extra empty last field is
    still a good line, in its place; the others are rejected with their count and exact text."""
    good, trailing = _line(sc_bytes="1"), _line(sc_bytes="2") + "\t"
    short, long_ = "2024-05-01\t13:37:00", _line(sc_bytes="3") + "\tx\ty"
    rows = _batch([good, short, trailing, long_, _line(sc_bytes="5"), trailing + "\t"]).to_pylist()
    marker, rows = rows[0], rows[1:]
    assert (marker["file_lines"], marker["file_rejected"]) == (6, 3)
    assert [r["line_no"] for r in rows] == [2, 3, 4, 5, 6, 7]
    assert [r["sc_bytes"] for r in rows] == [1, None, 2, None, 5, None]
    assert [r["reason"] for r in rows] == [
        None, "column count check: header declares 33 fields, line has 2",
        None, "column count check: header declares 33 fields, line has 35",
        None, "column count check: header declares 33 fields, line has 35",
    ]  # fmt: skip
    assert [r["value"] for r in rows] == [None, short, None, long_, None, trailing + "\t"]
    # A carriage return inside a value makes Arrow's reader see two rows: the careful path keeps it one line.
    (row,) = _batch([_line(cs_uri_stem="/a\rb")]).to_pylist()[1:]
    assert (row["reason"], row["cs_uri_stem"]) == (None, "/a\rb")


def test_a_number_too_large_for_its_field_rejects_the_line_not_the_file() -> None:
    rows = _batch([_line(sc_status="99999999999"), _line(c_port="2147483648"), _line(c_port="2147483647")])
    assert [r["reason"] for r in rows.to_pylist()[1:]] == [
        "out-of-range sc-status: '99999999999'", "out-of-range c-port: '2147483648'", None,
    ]  # fmt: skip
    assert rows.to_pylist()[3]["c_port"] == 2147483647
