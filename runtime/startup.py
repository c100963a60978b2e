"""Checks made before a component starts, each failing with one line that names the setting
to change: a broker or store that cannot be reached, a broker without the idempotent
producer, a store that is not a replica set (no change streams)."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError
from pymongo import AsyncMongoClient
from pymongo.errors import ConfigurationError, InvalidURI, PyMongoError
from pymongo.uri_parser import parse_uri

from runtime.aio import shielded
from runtime.eventlog import start_client
from runtime.settings import Settings


class StartupError(Exception):
    """What stops a component from starting, said in one line a person can act on."""


async def preflight(
    settings: Settings, *, broker: bool = True, store: bool = True, produces: bool = True
) -> None:
    """Raise StartupError unless the configured broker and store can serve jobline (and,
    for a command that `produces`, the broker the producer it is configured for)."""
    if broker:
        await check_broker(settings, produces=produces)
    if store:
        await check_store(settings)


async def check_broker(settings: Settings, *, produces: bool = True) -> None:
    servers = settings.kafka_bootstrap_servers
    if not servers:
        raise StartupError(
            "no broker is configured: set JOBLINE_KAFKA_BOOTSTRAP_SERVERS to the log's "
            "host:port (or use `jobline run`, which starts one)"
        )
    wait_s = settings.startup_wait_s
    admin = AIOKafkaAdminClient(bootstrap_servers=servers, client_id="jobline-preflight")
    try:
        await start_client(admin, admin.close, wait_s)
    except KafkaConnectionError:
        raise _unreachable(servers, wait_s) from None
    await shielded(admin.close())
    if produces and settings.kafka_idempotence:
        await _check_idempotence(servers, wait_s)


def _unreachable(servers: str, wait_s: float) -> StartupError:
    return StartupError(
        f"cannot reach the broker at {servers} (waited {wait_s:g} s): check "
        "JOBLINE_KAFKA_BOOTSTRAP_SERVERS"
    )


async def _check_idempotence(servers: str, wait_s: float) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=servers, client_id="jobline-preflight", enable_idempotence=True
    )
    try:
        await start_client(producer, producer.stop, wait_s)
    except KafkaConnectionError:
        raise _unreachable(servers, wait_s) from None
    except KafkaError as error:
        raise StartupError(
            f"the broker at {servers} cannot serve the idempotent producer (InitProducerId "
            f"failed: {type(error).__name__}): set JOBLINE_KAFKA_IDEMPOTENCE=false for a broker "
            "without it, such as the embedded one (Redpanda and Kafka have it)"
        ) from None
    await shielded(producer.stop())


async def check_store(settings: Settings) -> None:
    uri = settings.mongodb_uri
    if not uri:
        raise StartupError(
            "no store is configured: set JOBLINE_MONGODB_URI to a MongoDB replica set's URI "
            "(or use `jobline run`, which starts one)"
        )
    try:
        where = ",".join(f"{host}:{port}" for host, port in parse_uri(uri)["nodelist"])
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            uri, serverSelectionTimeoutMS=int(settings.startup_wait_s * 1000)
        )
    except (InvalidURI, ConfigurationError, ValueError) as error:
        raise StartupError(f"JOBLINE_MONGODB_URI is not a usable MongoDB URI: {error}") from None
    try:
        hello = await client.admin.command("hello")
    except PyMongoError as error:
        raise StartupError(
            f"cannot reach the store at {where} (waited {settings.startup_wait_s:g} s: "
            f"{type(error).__name__}): check JOBLINE_MONGODB_URI"
        ) from None
    finally:
        await shielded(client.close())
    if "setName" not in hello and hello.get("msg") != "isdbgrid":
        raise StartupError(
            f"the store at {where} is not a replica set, and jobline needs its change "
            "streams: run MongoDB as one (mongod --replSet rs0, then rs.initiate(); a single "
            "node will do) and name it in JOBLINE_MONGODB_URI (?replicaSet=rs0)"
        )
