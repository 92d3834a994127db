# syntax=docker/dockerfile:1
#
# One image for every ragstream process; the command picks the role:
#   docker run IMAGE                                   -> gateway on :8000 (default)
#   docker run IMAGE worker ingest | worker query      -> Kafka workers
#   docker run IMAGE migrate                           -> alembic upgrade head
# Configuration is environment variables only (SECRET_KEY, DATABASE_URL, ...).

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------------------
# build: resolve and install everything into a virtualenv that the runtime
# stage copies as a whole. Compilers live only here.
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build

# Bytecode is compiled here, at install time: the runtime filesystem may be
# read-only.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1

# A fallback only: used when some dependency has no wheel for the target
# platform (e.g. a new arm64 release) and must compile.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /build

# Every package comes from a lock, pinned with its hashes (`make lock`
# regenerates them): nothing is resolved here. Dependencies first, so this
# (slow) layer is reused while only the source changes. The runtime lock holds
# the base dependencies only, not the `local` extra: containers talk to real
# Kafka, Postgres, Redis and Chroma. The build backend goes into a venv of its
# own, which the runtime stage does not copy.
COPY requirements/lock-runtime.txt requirements/lock-build.txt ./requirements/
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements/lock-runtime.txt \
    && python -m venv /opt/build-backend \
    && /opt/build-backend/bin/pip install --no-cache-dir --require-hashes --no-deps \
       -r requirements/lock-build.txt

# Then the project itself, built by that backend and installed without the
# index; `pip check` fails the build if the lock misses a dependency.
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/build-backend/bin/pip wheel --no-deps --no-build-isolation --no-index --wheel-dir /tmp/dist . \
    && pip install --no-cache-dir --no-deps --no-index /tmp/dist/ragstream-*.whl \
    && pip check \
    && rag --help > /dev/null

# ---------------------------------------------------------------------------
# runtime: slim base, the virtualenv, an unprivileged user. No compilers, no
# source tree, no curl.
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="ragstream" \
      org.opencontainers.image.description="Self-hosted enterprise RAG: an event-driven pipeline on Kafka with streamed, cited answers." \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed numeric UID/GID: Kubernetes can only enforce runAsNonRoot against a
# numeric USER, and the manifests' fsGroup matches it.
ARG APP_UID=10001
RUN groupadd --system --gid ${APP_UID} rag \
    && useradd --system --uid ${APP_UID} --gid rag --home-dir /home/rag --create-home \
       --shell /usr/sbin/nologin rag \
    && mkdir -p /var/lib/rag/blobs \
    && chown -R rag:rag /var/lib/rag

COPY --from=build /opt/venv /opt/venv

# BLOB_DIR points into /var/lib/rag, which compose and Kubernetes mount as
# shared storage; an empty named volume mounted there inherits the rag owner.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BLOB_DIR=/var/lib/rag/blobs \
    LOG_FORMAT=json

WORKDIR /home/rag
# So that the runbook's `python -m alembic upgrade head` (and `current`)
# work in a pod, as they do in the repository.
COPY --chown=${APP_UID}:${APP_UID} alembic.ini ./
USER ${APP_UID}:${APP_UID}

EXPOSE 8000

# Liveness of the default command (the gateway). /health touches no
# dependency, so a database outage does not get healthy containers restarted.
# Worker containers have no HTTP port: disable this check for them (compose
# does; Kubernetes ignores HEALTHCHECK and uses its own probes).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

ENTRYPOINT ["rag"]
CMD ["gateway", "--host", "0.0.0.0", "--port", "8000"]
