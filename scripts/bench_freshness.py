"""Freshness of `otlp2parquet serve`: time from a client's 2xx to its rows being
visible through the catalog (what PyIceberg, DuckDB or `query` would read).

One client posts the same generated logs request at a steady rate and notes when
each 200 arrives and how many rows were acknowledged by then. A reader polls the
SQLite catalog with PyIceberg every 50 ms; a request is visible once the current
snapshot's `total-records` covers every row acknowledged up to and including it
(one client, so acknowledgements are ordered). Prints p50/p99/max in seconds.

Usage (scripts/bench-freshness.sh runs it): bench_freshness.py PORT WAREHOUSE PAYLOAD RECORDS SECONDS RATE
"""

import sys
import threading
import time
import urllib.request

from pyiceberg.catalog.sql import SqlCatalog


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main():
    port, wh, payload, records, seconds, rate = sys.argv[1:7]
    records, seconds, rate = int(records), float(seconds), float(rate)
    body = open(payload, "rb").read()
    acks = []  # (time of the 200, rows acknowledged so far)
    visible = {}  # index into acks -> time first seen through the catalog
    sending = threading.Event()
    sending.set()

    def poll():
        catalog = SqlCatalog("otlp2parquet", uri=f"sqlite:///{wh}/catalog.db", warehouse=f"file://{wh}")
        while True:
            total = 0
            try:
                snapshot = catalog.load_table("otel.logs").current_snapshot()
                if snapshot is not None:
                    total = int(snapshot.summary["total-records"])
            except Exception:  # the table does not exist before the first commit
                pass
            now = time.time()
            for i, (_, acknowledged) in enumerate(list(acks)):
                if i not in visible and acknowledged <= total:
                    visible[i] = now
            if not sending.is_set() and len(visible) == len(acks):
                return
            time.sleep(0.05)

    reader = threading.Thread(target=poll)
    reader.start()
    start = time.time()
    n = 0
    while time.time() - start < seconds:
        due = start + n / rate
        time.sleep(max(0.0, due - time.time()))
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/logs", data=body,
                                         headers={"Content-Type": "application/x-protobuf"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
        acks.append((time.time(), (len(acks) + 1) * records))
        n += 1
    sending.clear()
    reader.join(timeout=120)
    lags = [visible[i] - t for i, (t, _) in enumerate(acks) if i in visible]
    missing = len(acks) - len(lags)
    print(f"requests={len(acks)} visible={len(lags)} missing={missing} "
          f"p50_s={percentile(lags, 50):.2f} p99_s={percentile(lags, 99):.2f} max_s={max(lags):.2f}")
    sys.exit(1 if missing else 0)


if __name__ == "__main__":
    main()
