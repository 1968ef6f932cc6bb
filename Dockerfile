# Ledger service image: hash-locked dependencies in a virtual environment, run on distroless Python.
#
# Why the build stage is Debian 12 and not python:3.11-slim: gcr.io/distroless/python3-debian12 runs
# Debian's own CPython 3.11 at /usr/bin/python3.11. A venv records its interpreter as a symlink plus
# `home = /usr/bin` in pyvenv.cfg, so building the venv with that same Debian interpreter makes
# /opt/ledger/venv/bin/python resolve to /usr/bin/python3.11 in the runtime stage too, with the same ABI
# for compiled wheels (asyncpg, uvloop, ...). python:3.11-slim keeps its interpreter in /usr/local/bin,
# which does not exist in distroless.
#
# Base images are pinned by digest. Sources of the digests (both seen in several public repositories):
#   debian:12.12-slim                             sha256:d5d3f9c2...  (multi-arch index)
#   gcr.io/distroless/python3-debian12:nonroot    sha256:1a7c3d24...  (multi-arch index)
# To update: `docker buildx imagetools inspect <image>:<tag>` and replace tag and digest together.

FROM debian:12.12-slim@sha256:d5d3f9c23164ea16f31852f95bd5959aad1c5e854332fe00f7b3a20fcc9f635c AS build

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# python3-venv brings Debian's python3.11; python3-pip is used from outside the venv (pip --python), so the
# venv itself ships neither pip nor setuptools: the image holds exactly what requirements/runtime.txt locks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3-venv=3.11.2-1+b1 \
        python3-pip=23.0.1+dfsg-1 \
    && rm -rf /var/lib/apt/lists/* \
    && /usr/bin/python3.11 -m venv --without-pip /opt/ledger/venv

# Dependencies first, in their own layer: it is rebuilt only when the lock file changes.
COPY requirements/runtime.txt /tmp/build/requirements/runtime.txt
RUN python3 -m pip --python /opt/ledger/venv/bin/python install \
        --require-hashes --no-deps --only-binary=:all: \
        -r /tmp/build/requirements/runtime.txt

COPY service/ /tmp/build/service/
RUN python3 -m pip --python /opt/ledger/venv/bin/python install --no-deps /tmp/build/service \
    && /opt/ledger/venv/bin/python -c "import ledger"


FROM gcr.io/distroless/python3-debian12:nonroot@sha256:1a7c3d2445f783c51be174c8913624dc5bea2cd7ff1f94b9a229a16f0e40fa34 AS runtime

LABEL org.opencontainers.image.title="ledger" \
      org.opencontainers.image.description="Double-entry payment ledger service (aiohttp + asyncpg on PostgreSQL)"

COPY --from=build /opt/ledger/venv /opt/ledger/venv

ENV PATH="/opt/ledger/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LEDGER_HOST=0.0.0.0 \
    LEDGER_PORT=8080 \
    LEDGER_LOG_LEVEL=info

# distroless' nonroot user, by number so that runtimes can verify it is not root without /etc/passwd.
USER 65532:65532
EXPOSE 8080

# No shell and no curl in distroless: the service's own CLI probes GET /readyz on 127.0.0.1:$LEDGER_PORT.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/opt/ledger/venv/bin/python", "-m", "ledger", "healthcheck"]

ENTRYPOINT ["/opt/ledger/venv/bin/python", "-m", "ledger"]
CMD ["serve"]
