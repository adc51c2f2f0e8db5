"""A Flask service that leaks: every request's record stays in a module-level dict.

    python examples/leaky_flask_app.py --port 8000           # leaky
    python examples/leaky_flask_app.py --port 8000 --fixed   # keeps the last 100 only

Diagnosed, unchanged, with:

    leaklab run --load 'http://127.0.0.1:{port}/work' --rate 200/s --duration 20s \\
        -- python examples/leaky_flask_app.py --port {port}
"""

from __future__ import annotations

import argparse
import itertools
from collections import OrderedDict

from flask import Flask, jsonify

app = Flask(__name__)
_ids = itertools.count()
#: request id -> its record: the leak (never evicted unless --fixed)
SEEN: OrderedDict[int, RequestRecord] = OrderedDict()
KEEP: int | None = None
PAYLOAD = 1024


class RequestRecord:
    """What the service remembers of one request."""

    def __init__(self, request_id: int, size: int) -> None:
        self.request_id = request_id
        self.payload = bytearray(size)
        self.tags = [f"tag-{request_id}-{i}" for i in range(4)]


@app.get("/health")
def health():
    return "ok"


@app.get("/work")
def work():
    request_id = next(_ids)
    SEEN[request_id] = RequestRecord(request_id, PAYLOAD)
    if KEEP is not None:
        while len(SEEN) > KEEP:
            SEEN.popitem(last=False)
    return jsonify(id=request_id, kept=len(SEEN))


def main() -> None:
    global KEEP, PAYLOAD
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--fixed", action="store_true", help="keep the last 100 records only")
    parser.add_argument("--payload", type=int, default=PAYLOAD, help="bytes each record keeps")
    args = parser.parse_args()
    KEEP = 100 if args.fixed else None
    PAYLOAD = args.payload
    app.run(host="127.0.0.1", port=args.port, threaded=True)


if __name__ == "__main__":
    main()
