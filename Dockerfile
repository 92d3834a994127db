# One image for every ragstream process; the command picks the role:
#   docker run IMAGE                                   -> gateway on :8000 (default)
#   docker run IMAGE worker ingest | worker query | worker sync -> the workers
#   docker run IMAGE migrate                           -> alembic upgrade head
# Configuration is environment variables only (SECRET_KEY, DATABASE_URL, ...).
#
# Built with BuildKit (the cache mounts below), which every current Docker
# uses by default. No `# syntax=` line: the Dockerfile frontend built into the
# engine reads this file, so a build needs no registry at all once the base
# image is there.
#
# BASE_IMAGE: any Debian bookworm image with CPython 3.11 as `python3` and the
# venv module: the public python:3.11-slim-bookworm (/usr/local/bin/python3),
# or one made from Debian's packages (/usr/bin/python3 with python3-venv, as
# CI makes it with mmdebstrap: tests/support/container.py). Both stages use it.
ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------
# build: resolve and install everything into a virtualenv that the runtime
# stage copies as a whole. Compilers live only here.
# ---------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS build

# Bytecode is compiled here, at install time: the runtime filesystem may be
# read-only.
# pip trusts the system's CA store (ca-certificates, plus whatever the base
# added: a corporate TLS proxy's CA), not the copy of certifi it carries.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt

# A fallback only: used when some dependency has no wheel for the target
# platform (e.g. a new arm64 release) and must compile. Every package of the
# lock has a wheel for Linux x86_64 and CPython 3.11, so CI builds with
# BUILD_PACKAGES="" (no compiler: a source build would fail).
ARG BUILD_PACKAGES=build-essential
RUN if [ -n "$BUILD_PACKAGES" ]; then \
        apt-get update \
        && apt-get install -y --no-install-recommends $BUILD_PACKAGES \
        && rm -rf /var/lib/apt/lists/*; \
    fi

# python3, not python: Debian's own Python has no `python` command.
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /build

# Every package comes from a lock, pinned with its hashes (`make lock`
# regenerates them): nothing is resolved here. Dependencies first, so this
# (slow) layer is reused while only the source changes. The runtime lock holds
# the base dependencies only, not the `local` extra: containers talk to real
# Kafka, Postgres, Redis and Chroma. The build backend goes into a venv of its
# own, which the runtime stage does not copy. pip's cache is a BuildKit cache
# mount: kept by the engine between builds, never part of a layer.
COPY requirements/lock-runtime.txt requirements/lock-build.txt ./requirements/
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --require-hashes --no-deps -r requirements/lock-runtime.txt \
    && python3 -m venv /opt/build-backend \
    && /opt/build-backend/bin/pip install --require-hashes --no-deps \
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
FROM ${BASE_IMAGE} AS runtime

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
