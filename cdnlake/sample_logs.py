"""Deterministic, realistic CloudFront standard logs of a video-streaming service (sample data).

Pure module (numpy, stdlib, tqdm). Layout: ``<out>/<DISTID>/<DISTID>.<YYYY-MM-DD-HH>.<8 hex>.gz``;
about 1 file in 8 uses the 26-field header of 2018, about 1 in 20 repeats its header mid-file.
Malformed lines (about 0.1%, counted exactly) are of the ``MALFORMED_KINDS``: ``truncated`` (cut inside
a field: fewer columns than declared), ``extra_column`` (one more column, non-empty: ``unexpected``),
``bad_sc_bytes`` (sc-bytes is ``ERR``) and ``bad_time`` (time like ``13:xx:07``).
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import gzip
import pathlib
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import numpy as np
from tqdm import tqdm

from cdnlake.sample_v2 import FORMATS, v2_key, write_v2_file

_FIELD_NAMES = (
    "date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) "
    "cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header cs-protocol "
    "cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher x-edge-response-result-type "
    "cs-protocol-version fle-status fle-encrypted-fields c-port time-to-first-byte "
    "x-edge-detailed-result-type sc-content-type sc-content-len sc-range-start sc-range-end")
LOG_FIELDS: tuple[str, ...] = tuple(_FIELD_NAMES.split())
FIELDS_33 = LOG_FIELDS
FIELDS_26 = LOG_FIELDS[:26]
GZIP_LEVEL = 1
MALFORMED_RATE = 0.001
MALFORMED_KINDS = ("truncated", "extra_column", "bad_sc_bytes", "bad_time")

_EDGES = {"NRT51": 14, "NRT57-C1": 12, "NRT12-C3": 8, "NRT20-C4": 6, "KIX50-C1": 10, "KIX56-C1": 6,
          "TPE51-C1": 10, "TPE52-C2": 6, "HKG60-C2": 5, "HKG62-C2": 3, "ICN57-C1": 3, "SIN2-C1": 2,
          "LAX3-C4": 2, "SFO53-C1": 1, "SEA19-C2": 1, "FRA56-C2": 1}
_MOZ, _KG = "Mozilla/5.0 ", "AppleWebKit/537.36 (KHTML, like Gecko)"
_SAF = "AppleWebKit/605.1.15 (KHTML, like Gecko)"
_UAS: tuple[tuple[str, float, bool], ...] = (  # (User-Agent, weight, is a web browser)
    ("AppleCoreMedia/1.0.0.21F90 (iPhone; U; CPU OS 17_5_1 like Mac OS X; ja_jp)", 20, False),
    (_MOZ + f"(iPhone; CPU iPhone OS 17_5 like Mac OS X) {_SAF} Version/17.5 Mobile/15E148 Safari/604.1",
     10, True),
    (_MOZ + f"(iPad; CPU OS 16_6 like Mac OS X) {_SAF} Version/16.6 Mobile/15E148 Safari/604.1", 3, True),
    ("StreamApp/5.12.0 (Linux;Android 14) ExoPlayerLib/2.19.1", 14, False),
    (_MOZ + f"(Linux; Android 14; SM-S918B) {_KG} Chrome/125.0.6422.165 Mobile Safari/537.36", 7, True),
    (_MOZ + f"(Linux; Android 13; Pixel 7) {_KG} Chrome/124.0.6367.179 Mobile Safari/537.36", 4, True),
    (_MOZ + f"(Windows NT 10.0; Win64; x64) {_KG} Chrome/125.0.0.0 Safari/537.36", 9, True),
    (_MOZ + f"(Windows NT 10.0; Win64; x64) {_KG} Chrome/125.0.0.0 Safari/537.36 Edg/125.0.2535.85",
     4, True),
    (_MOZ + "(Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0", 2, True),
    (_MOZ + f"(Macintosh; Intel Mac OS X 10_15_7) {_SAF} Version/17.5 Safari/605.1.15", 4, True),
    (_MOZ + f"(Macintosh; Intel Mac OS X 10_15_7) {_KG} Chrome/125.0.0.0 Safari/537.36", 3, True),
    (_MOZ + f"(SMART-TV; LINUX; Tizen 6.5) {_KG} 85.0.4183.93/6.5 TV Safari/537.36", 4, False),
    (_MOZ + f"(Web0S; Linux/SmartTV) {_KG} Chrome/87.0.4280.88 Safari/537.36 WebAppManager", 3, False),
    (_MOZ + f"(X11; Linux armv7l) {_KG} Chrome/114.0.5735.350 Safari/537.36 CrKey/1.56.500000 "
     "DeviceType/Chromecast", 3, False),
)
_REFS = tuple(quote(u, safe=":/?=&") for u in (
    "https://www.example-stream.jp/", "https://www.example-stream.jp/watch/ドラマ/",
    "https://m.example-stream.jp/live/", "https://www.example-stream.tw/zh-tw/動畫/", "https://www.google.com/",
    "https://t.co/", "https://news.yahoo.co.jp/articles/3f9a2c", "https://www.facebook.com/"))
_CUSTOM = ("vod.example-stream.jp", "live.example-stream.jp", "media.example-stream.tw",
           "cdn.example-anime.jp")
_TLS = ("TLSv1.3\tTLS_AES_128_GCM_SHA256", "TLSv1.3\tTLS_AES_256_GCM_SHA384",
        "TLSv1.3\tTLS_CHACHA20_POLY1305_SHA256", "TLSv1.2\tECDHE-RSA-AES128-GCM-SHA256",
        "TLSv1.2\tECDHE-RSA-AES256-GCM-SHA384", "-\t-")
_TLS_P = (0.55, 0.12, 0.06, 0.17, 0.08, 0.02)  # the last one is plain http
# Outcome classes -> x-edge-result-type; class 4 ("incomplete") is Error with a 200/206 (viewer aborted).
_CATS = np.array(["Hit", "Miss", "RefreshHit", "Error", "Error", "LimitExceeded", "CapacityExceeded"], object)
_CAT_P = np.array([0.745, 0.238, 0.006, 0.004, 0.005, 0.001, 0.001])
_ERROR, _INCOMPLETE, _LIMIT, _CAPACITY = 3, 4, 5, 6
_ERR_CODES, _ERR_P = np.array([403, 404, 500, 502, 503, 0]), np.array([0.2, 0.35, 0.07, 0.13, 0.05, 0.2])
_DETAIL = {0: "ClientHungUpRequest", 500: "OriginError", 502: "OriginConnectError", 503: "OriginCommError"}
_DIURNAL = ((0, 0.62), (3, 0.58), (6, 0.55), (9, 0.62), (11, 0.8), (13.5, 1.0), (15, 0.85), (17, 0.5),
            (18.5, 0.28), (19.5, 0.18), (21, 0.22), (22.5, 0.4), (24, 0.62))  # UTC hour -> relative load
_B64_TAIL = np.array([list(base64.urlsafe_b64encode(bytes([b]))) for b in range(256)], np.uint8)
_World = dict[str, Any]
_M3U8, _MPD = "application/vnd.apple.mpegurl", "application/dash+xml"


@dataclass(frozen=True)
class GenerationResult:
    files: list[pathlib.Path]
    distribution_ids: list[str]
    lines_written: int  # data lines, without '#' header lines
    malformed_lines: int
    valid_lines: int
    malformed_by_kind: dict[str, int]


@functools.cache
def _tables() -> dict[str, np.ndarray]:
    """String lookup tables: integers 0..65535, status codes, milliseconds as seconds, clock times."""
    ints = np.array([str(i) for i in range(65536)], object)
    status = ints[:600].copy()
    status[0] = "000"
    return {"int": ints, "status": status,
            "ms": np.array([f"{i // 1000}.{i % 1000:03d}" for i in range(60000)], object),
            "clock": np.array([f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86400)],
                              object)}


def distribution_ids(n: int, seed: int) -> list[str]:
    """Deterministic CloudFront-like ids (``E`` + 13 of A-Z0-9); the first k of n are those for k."""
    alphabet = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"))
    out: list[str] = []
    for i in range(n):
        rng = np.random.default_rng([seed, 7919, i])
        while (ident := "E" + "".join(rng.choice(alphabet, 13))) in out:
            pass
        out.append(ident)
    return out


def write_gzip_lines(path: pathlib.Path, header_fields: Sequence[str], lines: list[str],
                     repeat_header_at: int | None = None, level: int = GZIP_LEVEL) -> None:
    """Write a CloudFront log file (gzip, mtime 0); optionally repeat the header before a line index."""
    header = f"#Version: 1.0\n#Fields: {' '.join(header_fields)}"
    if repeat_header_at is not None:
        lines = [*lines[:repeat_header_at], header, *lines[repeat_header_at:]]
    text = "\n".join([header, *lines, ""])
    pathlib.Path(path).write_bytes(gzip.compress(text.encode("utf-8"), level, mtime=0))


def _catalogue(rng: np.random.Generator, n_videos: int = 48, n_segs: int = 10) -> dict[str, np.ndarray]:
    """Zipf-popular objects: DASH and HLS segments of 4 renditions per video, plus playlists."""
    rends = (("1080p", 1.8e6, 0.25), ("720p", 9e5, 0.4), ("480p", 4.5e5, 0.2), ("360p", 2.2e5, 0.15))
    out: list[tuple[str, str, int, float]] = []  # path, content type, size, weight
    for rank in (rng.permutation(n_videos) + 1).tolist():
        vid = int(rng.integers(100_000, 1_000_000))
        base = f"/{vid % 100}/{vid}_{rng.bytes(16).hex()}/{rng.integers(1_450_000_000, 1_700_000_000)}"
        pop = rank**-1.1
        for name, median, share in rends:
            sizes, pw = np.clip(rng.lognormal(np.log(median), 0.3, n_segs), 30_000, 4_990_000), pop * share
            for s, size in enumerate(sizes.astype(int).tolist()):
                w = pw * 0.9**s
                out.append((f"{base}_dash/{name}_{1 + 6 * s}", "video/mp4", size, 0.55 * w))
                out.append((f"{base}_hls/hls/{name}/segment_{s:05d}.ts", "video/MP2T", size, 0.45 * w))
            out.append((f"{base}_hls/hls/{name}/index.m3u8", _M3U8, int(rng.integers(300, 2500)), 0.3 * pw))
        out.append((f"{base}_dash/manifest.mpd", _MPD, int(rng.integers(1500, 6000)), 0.3 * pop))
        out.append((f"{base}_hls/hls/master.m3u8", _M3U8, int(rng.integers(400, 900)), 0.25 * pop))
    paths, ctypes, size_list, weights = zip(*out, strict=True)
    w = np.array(weights)
    return {"path": np.array(paths, object), "ctype": np.array(ctypes, object), "cdf": np.cumsum(w / w.sum()),
            "size": np.array(size_list, np.int64), "seg": np.array([c.startswith("video") for c in ctypes])}


def _ips(rng: np.random.Generator, n: int, v6_share: float) -> np.ndarray:
    v4 = rng.integers(1, 255, size=(n, 4))
    v4[:, 0] = rng.choice([1, 14, 27, 36, 49, 58, 60, 61, 106, 114, 118, 121, 126, 153, 180, 210, 220], n)
    v6 = rng.integers(0, 65536, size=(n, 6)).tolist()
    pre = rng.choice(["2400:4050", "2404:7a80", "240b:11", "2001:b011", "2409:10"], n).tolist()
    is6 = (rng.random(n) < v6_share).tolist()
    return np.array([f"{p}:{':'.join(f'{x:x}' for x in b)}" if s else ".".join(map(str, a))
                     for a, b, p, s in zip(v4.tolist(), v6, pre, is6, strict=True)], object)


def _viewers(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Viewer pool; values are pre-joined groups of adjacent fields (c-ip, Referer..Cookie, XFF..cipher)."""
    ua_w, edge_w = np.array([u[1] for u in _UAS]), np.array([*_EDGES.values()])
    ref_w = 1 / np.arange(1, len(_REFS) + 1)  # Zipf-like referrer popularity
    ua_i = rng.choice(len(_UAS), n, p=ua_w / ua_w.sum())
    double = rng.random(n) < 0.10  # pre-2020 style double encoding (%2520) of User-Agent and Referer
    ua = np.array([quote(u[0], safe="/;:(),+=!*'&@") for u in _UAS], object)[ua_i]
    browser = np.array([u[2] for u in _UAS])[ua_i] & (rng.random(n) < 0.5)
    ref = np.where(browser, np.array(_REFS, object)[rng.choice(len(_REFS), n, p=ref_w / ref_w.sum())], "-")
    enc2 = np.frompyfunc(lambda s: s.replace("%", "%25"), 1, 1)
    query = np.array([f"sid={rng.bytes(6).hex()}" if q else "-" for q in (rng.random(n) < 0.2)], object)
    xff_u, other = rng.random(n), _ips(rng, n, 0.05)
    xff = np.where(xff_u < 0.96, "-", np.where(xff_u < 0.99, other, other + "," + np.roll(other, 1)))
    tls = rng.choice(len(_TLS), n, p=_TLS_P)
    activity = rng.lognormal(0, 1.0, n)
    edge = np.array([*_EDGES], object)[rng.choice(len(_EDGES), n, p=edge_w / edge_w.sum())]
    return {"ip": _ips(rng, n, 0.15), "edge": edge,
            "ruqc": np.where(double, enc2(ref), ref) + "\t" + np.where(double, enc2(ua), ua) + "\t" + query
            + "\t-",
            "xss": xff.astype(object) + "\t" + np.array(_TLS, object)[tls],
            "proto": np.where(tls == len(_TLS) - 1, "http", "https").astype(object),
            "vff": np.where(rng.random(n) < 0.78, "HTTP/2.0\t-\t-", "HTTP/1.1\t-\t-").astype(object),
            "cdf": np.cumsum(activity) / activity.sum()}


def _request_ids(rng: np.random.Generator, n: int, salt: int, key: int) -> list[str]:
    """56-char base64url ids ending in '==' (40 bytes); bytes 0-7 are a bijection of (salt, i) for a key."""
    raw = rng.integers(0, 256, size=(n, 40), dtype=np.uint8)
    z = ((np.uint64(salt) << np.uint64(32)) | np.arange(n, dtype=np.uint64)) ^ np.uint64(key)
    for shift, mult in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
        z = (z ^ (z >> np.uint64(shift))) * np.uint64(mult)
    raw[:, :8] = (z ^ (z >> np.uint64(31))).view(np.uint8).reshape(n, 8)
    body = np.frombuffer(base64.urlsafe_b64encode(raw[:, :39].tobytes()), np.uint8).reshape(n, 52)
    text = np.concatenate([body, _B64_TAIL[raw[:, 39]]], axis=1).tobytes().decode()
    return [text[i:i + 56] for i in range(0, 56 * n, 56)]


def _outcomes(rng: np.random.Generator, seg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outcome class (index into _CATS) and HTTP status per row (0 = '000')."""
    n = len(seg)
    cat = np.searchsorted(np.cumsum(_CAT_P), rng.random(n) * _CAT_P.sum(), side="right")
    u = rng.random(n)
    status = np.where(seg, np.where(u < 0.55, 200, np.where(u < 0.97, 206, 304)), np.where(u < 0.9, 200, 304))
    status[(cat == _INCOMPLETE) & (status == 304)] = 200
    err, lim = cat == _ERROR, cat == _LIMIT
    status[err] = rng.choice(_ERR_CODES, int(err.sum()), p=_ERR_P)
    status[lim] = rng.choice([429, 503], int(lim.sum()), p=[0.3, 0.7])
    status[cat == _CAPACITY] = 503
    return cat, status


def _sizes(rng: np.random.Generator, cat: np.ndarray, status: np.ndarray,
           size: np.ndarray) -> tuple[np.ndarray, ...]:
    """sc-bytes, sc-content-len, sc-range-start, sc-range-end (-1 = '-'), ttfb and time-taken (ms)."""
    n, part = len(cat), status == 206
    length = np.where(part, np.maximum(np.minimum(size, 30_000), size * rng.uniform(0.3, 1, n)), size)
    length = length.astype(np.int64)
    start = np.where(part, (rng.random(n) * (size - length + 1)).astype(np.int64), -1)
    end = np.where(part, start + length - 1, -1)
    clen = np.where((status == 200) | part, length, np.where(status >= 400, rng.integers(150, 900, n), -1))
    partial = (clen * rng.uniform(0.02, 0.9, n)).astype(np.int64)  # aborted downloads
    body = np.where(cat == _INCOMPLETE, partial, np.maximum(clen, 0))
    sc_bytes = np.where(status == 0, rng.integers(0, 800, n), rng.integers(320, 600, n) + body)
    median = np.select([cat == 1, status >= 500, cat >= _ERROR], [80.0, 400.0, 15.0], 3.0)
    ttfb = (rng.lognormal(0, 0.7, n) * median).astype(np.int64) + 1
    taken = ttfb + (sc_bytes * 8 / (rng.lognormal(np.log(25), 0.7, n) * 1000)).astype(np.int64)  # ~25 Mbps
    return sc_bytes, clen, start, end, np.minimum(ttfb, 59_999), np.minimum(taken, 59_999)


def _columns(rng: np.random.Generator, world: _World, d: int, h: int, sec: np.ndarray) -> list[list[str]]:
    """Rows as 19 column groups (each one or more tab-joined fields); the first 15 hold the 26 fields."""
    n, objs, vw, tab = len(sec), world["objects"], world["viewers"][d], _tables()
    obj = np.searchsorted(objs["cdf"], rng.random(n) * objs["cdf"][-1])
    vi = np.searchsorted(vw["cdf"], rng.random(n) * vw["cdf"][-1])
    cat, status = _outcomes(rng, objs["seg"][obj])
    sc_bytes, clen, start, end, ttfb, taken = _sizes(rng, cat, status, objs["size"][obj])
    inc = cat == _INCOMPLETE
    resp = cat.copy()
    resp[inc] = (rng.random(int(inc.sum())) >= 0.7).astype(resp.dtype)  # the aborted one was a Hit or Miss
    detail = _CATS[cat]
    detail[inc] = "ClientCommError"
    for code, name in _DETAIL.items():
        detail[(cat == _ERROR) & (status == code)] = name
    err_type = np.where(status < 500, "application/xml", "text/html")
    ctype = np.where(clen < 0, "-", np.where(status >= 400, err_type, objs["ctype"][obj]))
    v = {k: a[vi].tolist() for k, a in vw.items() if k != "cdf"}
    tail = [f"{t}\t{c}\t{s}\t{e}" if s >= 0 else f"{t}\t{c}\t-\t-" if c >= 0 else f"{t}\t-\t-\t-"
            for t, c, s, e in zip(ctype.tolist(), clen.tolist(), start.tolist(), end.tolist(), strict=True)]
    return [world["clock"][sec].tolist(), v["edge"], list(map(str, sc_bytes.tolist())), v["ip"],
            objs["path"][obj].tolist(), tab["status"][status].tolist(), v["ruqc"], _CATS[cat].tolist(),
            _request_ids(rng, n, d * 24 + h, world["key"]), v["proto"],
            tab["int"][rng.integers(200, 900, n)].tolist(),
            tab["ms"][taken].tolist(), v["xss"], _CATS[resp].tolist(), v["vff"],
            tab["int"][rng.integers(1024, 65536, n)].tolist(), tab["ms"][ttfb].tolist(), detail.tolist(),
            tail]


def _break_line(rng: np.random.Generator, line: str, kind: str, nf: int) -> str:
    f = line.split("\t")
    if kind == "truncated":  # cut inside field k: k + 1 <= nf - 2 columns remain
        k = int(rng.integers(3, nf - 2))
        return "\t".join(f[:k] + [f[k][: max(1, len(f[k]) // 2)]])
    if kind == "extra_column":
        return line + "\tunexpected"
    f[3], f[1] = ("ERR", f[1]) if kind == "bad_sc_bytes" else (f[3], f[1][:3] + "xx" + f[1][5:])
    return "\t".join(f)


def _hour_files(rng: np.random.Generator, world: _World, d: int, h: int, fph: int,
                malformed: dict[str, int]) -> list[tuple[str, tuple[str, ...], list[str], int | None]]:
    """Rows of distribution d for UTC hour h split over fph files: (name, fields, lines, repeat_at)."""
    sec = np.repeat(np.arange(h * 60, h * 60 + 60), world["counts"][d, h * 60:h * 60 + 60]) * 60
    sec += rng.integers(0, 60, len(sec))
    weights = rng.uniform(0.5, 1.5, fph)
    fidx = rng.choice(fph, len(sec), p=weights / weights.sum())
    order = np.lexsort((sec, fidx))
    sec, bounds = sec[order], np.searchsorted(fidx[order], np.arange(fph + 1)).tolist()
    cols = _columns(rng, world, d, h, sec)
    old, repeat = (rng.random(fph) < 1 / 8).tolist(), (rng.random(fph) < 1 / 20).tolist()
    uniq = rng.choice(2**32, fph, replace=False).tolist()
    out = []
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        if a == b:
            continue
        fields = FIELDS_26 if old[i] else FIELDS_33
        lines = list(map("\t".join, zip(*(c[a:b] for c in (cols[:15] if old[i] else cols)), strict=True)))
        n_bad = int(rng.binomial(b - a, MALFORMED_RATE))
        for pos, kind in zip(rng.choice(b - a, n_bad, replace=False).tolist(),
                             rng.choice(MALFORMED_KINDS, n_bad).tolist(), strict=True):
            lines[pos] = _break_line(rng, lines[pos], kind, len(fields))
            malformed[kind] += 1
        name = f"{world['ids'][d]}.{world['date']}-{h:02d}.{uniq[i]:08x}.gz"
        out.append((name, fields, lines, (b - a) // 2 if repeat[i] else None))
    return out


def _world(date: dt.date, distributions: int, rows: int, seed: int) -> _World:
    rng = np.random.default_rng([seed, 1])
    share = 0.6 ** np.arange(distributions)  # uneven: 0.51 / 0.31 / 0.18 for 3
    per_dist = np.floor(rows * share / share.sum()).astype(np.int64)
    per_dist[0] += rows - per_dist.sum()
    hours, load = zip(*_DIURNAL, strict=True)
    curve = np.interp((np.arange(1440) + 0.5) / 60, hours, load)
    burst = int(rng.integers(12 * 60, 15 * 60))  # a live event: 15-20 minutes at 3x, 12:00-15:20 UTC
    curve[burst:burst + int(rng.integers(15, 21))] *= 3.0
    probs = [curve * rng.lognormal(0, 0.08, 1440) for _ in per_dist]  # minute-level jitter
    counts = np.stack([rng.multinomial(k, p / p.sum()) for k, p in zip(per_dist, probs, strict=True)])
    pool = _viewers(rng, int(np.clip(rows // 50, 300, 100_000)))
    viewers = []
    for d in range(distributions):
        host = "d" + "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz0123456789"), 13)) + ".cloudfront.net"
        custom = _CUSTOM[d] if d < len(_CUSTOM) else f"cdn{d}.example-stream.jp"
        viewers.append({**pool, "ip": pool["ip"] + f"\tGET\t{host}", "proto": custom + "\t" + pool["proto"]})
    return {"date": date.isoformat(), "ids": distribution_ids(distributions, seed), "counts": counts,
            "key": int(rng.integers(0, 2**63)), "clock": date.isoformat() + "\t" + _tables()["clock"],
            "objects": _catalogue(rng), "viewers": viewers}


def generate_logs(date: dt.date, distributions: int, rows: int, seed: int, out_dir: pathlib.Path,
                  files_per_hour: int = 4, progress: bool = False, fmt: str = "legacy",
                  hive: bool = False) -> GenerationResult:
    """Write ``rows`` log lines for UTC ``date`` over ``distributions`` (deterministic for a seed).

    ``fmt`` other than legacy writes the same requests as standard logging v2 deliveries
    (cdnlake/sample_v2.py), under plain or (``hive``) Hive-style key paths.
    """
    if distributions < 1 or rows < 0 or files_per_hour < 1 or fmt not in FORMATS:
        raise ValueError(f"need distributions >= 1, rows >= 0, files_per_hour >= 1, format in {FORMATS}")
    world = _world(date, distributions, rows, seed)
    malformed = dict.fromkeys(MALFORMED_KINDS, 0)
    files: list[pathlib.Path] = []
    pending: list[Future[None]] = []
    with ThreadPoolExecutor(max_workers=1) as pool, tqdm(
            total=distributions * 24, disable=not progress, unit="hour", desc="generate-logs") as bar:
        for d, ident in enumerate(world["ids"]):
            folder = pathlib.Path(out_dir) / ident
            if fmt == "legacy":
                folder.mkdir(parents=True, exist_ok=True)
            for h in range(24):
                rng = np.random.default_rng([seed, 2, d, h])
                for name, fields, lines, repeat_at in _hour_files(rng, world, d, h, files_per_hour,
                                                                   malformed):
                    if fmt == "legacy":
                        files.append(folder / name)
                        pending.append(pool.submit(write_gzip_lines, folder / name, fields, lines, repeat_at))
                        continue
                    path = v2_key(pathlib.Path(out_dir), ident, date, h, name.split(".")[2], fmt, hive)
                    files.append(path)
                    pending.append(pool.submit(write_v2_file, path, fmt, fields, lines, repeat_at))
                while len(pending) > 2 * files_per_hour:  # gzip runs in the thread: zlib drops the GIL
                    pending.pop(0).result()
                bar.update(1)
        for fut in pending:
            fut.result()
    bad = sum(malformed.values())
    return GenerationResult(files, world["ids"], rows, bad, rows - bad, malformed)
