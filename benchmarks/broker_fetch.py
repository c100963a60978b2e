"""What a fetch costs the embedded broker (Tansu) as its partition grows.

Starts a Tansu broker on a free loopback port, appends records to one partition, `--batch`
at a time (1, the default: a creation is appended alone, and so is most of what the
processors append at a steady rate; 50: a burst), and at each size times 200 fetches of the
last few records: the broker's CPU per fetch (from /proc) and the wall time, against the
first size, and per thousand batches stored. Prints figures; asserts nothing.

Why it grows (Tansu 0.6's source, `tansu-storage/src/dynostore.rs`, `DynoStore::fetch`, the
engine behind `memory://`): a fetch that has records to return first lists every batch
object of the partition (an object store `list` of the partition's prefix) to find the ones
at or after its offset. An empty fetch (at the end of the log) lists nothing.

    .venv/bin/python benchmarks/broker_fetch.py [--sizes 5000 20000 80000] [--batch 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from jobline.children import broker
from jobline.serving import free_port

FETCHES = 200


def cpu_ms(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


async def measure(sizes: list[int], batch: int, port: int, pid: int) -> None:
    await asyncio.sleep(0.5)
    servers = f"127.0.0.1:{port}"
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    await admin.create_topics([NewTopic("fetch-cost", 1, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=servers, linger_ms=2)
    await producer.start()
    tp = TopicPartition("fetch-cost", 0)
    stored, first = 0, None
    try:
        for size in sizes:
            while stored < size:
                sent = [
                    await producer.send("fetch-cost", b"x" * 300, key=b"k") for _ in range(batch)
                ]
                await asyncio.gather(*sent)
                stored += batch
            consumer = AIOKafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)
            await consumer.start()
            consumer.assign([tp])
            cpu, started = cpu_ms(pid), time.perf_counter()
            for _ in range(FETCHES):
                consumer.seek(tp, stored - 10)
                await consumer.getmany(tp, timeout_ms=1000)
            wall = (time.perf_counter() - started) * 1000 / FETCHES
            per_fetch = (cpu_ms(pid) - cpu) / FETCHES
            await consumer.stop()
            first = first or per_fetch
            batches = stored // batch
            print(
                f"{stored:>7} records in {batches:>7} batches: a fetch at the end {wall:.2f} ms, "
                f"broker CPU {per_fetch:.2f} ms (x{per_fetch / first:.1f} of the first size; "
                f"{per_fetch * 1000 / batches:.3f} ms per thousand batches)",
                flush=True,
            )
    finally:
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5_000, 20_000, 80_000])
    parser.add_argument("--batch", type=int, default=1, help="records appended at a time")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="broker-fetch-") as data_dir:
        port = free_port()
        argv = broker(port, Path(data_dir)).argv
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
        try:
            asyncio.run(measure(sorted(args.sizes), args.batch, port, process.pid))
        finally:
            process.terminate()
            process.wait()


if __name__ == "__main__":
    main()
