#!/usr/bin/env python3
"""Long-lived TCP connections that exchange a line every 100 ms, for the ECMP test.

  lines.py server NAME PORT
      Answers every line it receives with "NAME <the line>" (one real server).

  lines.py client HOST PORT N STATUS [INTERVAL]
      Opens N connections to HOST:PORT; each sends "<conn> <seq>" every INTERVAL
      seconds (0.1) and waits up to 20 s for its answer. Every 0.2 s it writes STATUS
      (JSON, replaced atomically): per connection the server that answered first, the
      answers so far, whether another server ever answered (moved), the error that
      ended it (reset, timeout, ...), and the longest wait for an answer. It runs
      until SIGTERM, then writes STATUS a last time.
"""
import asyncio
import json
import os
import signal
import sys
import time

ANSWER_TIMEOUT = 20.0


async def serve(name, port):
    async def handle(reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                writer.write(name.encode() + b" " + line)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "0.0.0.0", port, reuse_address=True)
    async with server:
        await server.serve_forever()


class Conn:
    def __init__(self, i):
        self.i = i
        self.server = None
        self.answers = 0
        self.moved = False
        self.error = None
        self.longest = 0.0
        self.last = None  # time of the last answer

    def row(self):
        return {"conn": self.i, "server": self.server, "answers": self.answers,
                "moved": self.moved, "error": self.error,
                "longest_wait": round(self.longest, 3)}


async def talk(c, host, port, interval):
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
    except Exception as e:  # noqa: BLE001 - every failure is recorded
        c.error = f"connect: {type(e).__name__}: {e}"
        return
    seq = 0
    try:
        while True:
            line = f"{c.i} {seq}\n".encode()
            sent = time.monotonic()
            writer.write(line)
            await writer.drain()
            got = await asyncio.wait_for(reader.readline(), ANSWER_TIMEOUT)
            if not got:
                c.error = "closed by the other end"
                return
            name, _, echo = got.partition(b" ")
            if echo != line:
                c.error = f"wrong answer {got!r} to {line!r}"
                return
            name = name.decode()
            if c.server is None:
                c.server = name
            elif name != c.server:
                c.moved = True
            c.answers += 1
            c.last = time.monotonic()
            c.longest = max(c.longest, c.last - sent)
            seq += 1
            await asyncio.sleep(interval)
    except asyncio.TimeoutError:
        c.error = f"no answer within {ANSWER_TIMEOUT:.0f} s"
    except Exception as e:  # noqa: BLE001
        c.error = f"{type(e).__name__}: {e}"


def write_status(path, conns, done):
    rows = [c.row() for c in conns]
    status = {"done": done, "connected": sum(1 for c in conns if c.server),
              "answers": sum(c.answers for c in conns), "conns": rows}
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(status, f)
    os.replace(tmp, path)


async def client(host, port, n, status, interval):
    conns = [Conn(i) for i in range(n)]
    tasks = [asyncio.create_task(talk(c, host, port, interval)) for c in conns]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    while not stop.is_set():
        write_status(status, conns, False)
        try:
            await asyncio.wait_for(stop.wait(), 0.2)
        except asyncio.TimeoutError:
            pass
    for t in tasks:
        t.cancel()
    write_status(status, conns, True)


def main(argv):
    if len(argv) >= 4 and argv[1] == "server":
        asyncio.run(serve(argv[2], int(argv[3])))
    elif len(argv) >= 6 and argv[1] == "client":
        interval = float(argv[6]) if len(argv) > 6 else 0.1
        asyncio.run(client(argv[2], int(argv[3]), int(argv[4]), argv[5], interval))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
