# MiniTwit production image: gunicorn serving minitwit:create_app() from /app as a non-root user.
#
# Production builds use the official slim image; CI, which reaches no registry, passes a locally
# built Debian base instead: `--build-arg BASE=local/python:3.11-slim` (see docker/ci/README.md).
# Build: DOCKER_BUILDKIT=1 docker build --build-arg VERSION=1.2.3 --build-arg REVISION=$(git rev-parse HEAD) .
ARG BASE=python:3.12-slim

# ---------------------------------------------------------------------------------------------
# Build stage: a virtualenv holding exactly the pinned runtime dependencies (requirements.txt).
# ---------------------------------------------------------------------------------------------
FROM ${BASE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv
# Dependencies before source, so a code change does not reinstall them.
COPY requirements.txt /tmp/requirements.txt
# Behind a TLS-intercepting proxy pip needs that proxy's CA. It arrives as a BuildKit secret
# (`--secret id=ca,src=/etc/ssl/certs/ca-certificates.crt`), which is mounted for this one
# command and never written to a layer. Without the secret pip uses its own bundle.
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi; \
    /opt/venv/bin/pip install --no-compile -r /tmp/requirements.txt \
    && /opt/venv/bin/pip uninstall --yes --quiet pip
# The venv drops pip once done: the final image runs the app and installs nothing (no installer in it).

# ---------------------------------------------------------------------------------------------
# Final stage: the base, the virtualenv and the application; nothing else.
# ---------------------------------------------------------------------------------------------
FROM ${BASE}
ARG VERSION=dev
ARG REVISION=unknown
ARG SOURCE=https://github.com/minitwit-ops/minitwit
LABEL org.opencontainers.image.title="minitwit" \
      org.opencontainers.image.description="MiniTwit, the Twitter clone, served by gunicorn" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}"

# Debian's security fixes published since the base image was made. The official python image is
# rebuilt only every few weeks, so a build from it can carry fixes Debian has already published;
# scripts/check-image-updates.sh fails such an image. The price is bit-for-bit reproducibility:
# one commit built on two days can differ in Debian package versions. That is wanted (rebuilding
# picks up fixes), and what went in is recorded per build by the SBOM (scripts/sbom.sh). Pinning
# the base by digest and apt to a snapshot.debian.org date would be reproducible, but would also
# freeze the fixes until someone bumps the date.
# This runs after the VERSION and REVISION arguments, which change with every commit: a RUN after a
# changed ARG misses the layer cache, so the upgrade is never an old build's cached layer.
# Ref: https://docs.docker.com/build/building/variables/#impact-on-build-caching
# apt's lists and its package caches (pkgcache.bin, srcpkgcache.bin: some 60 MB) go in the same layer.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get upgrade --yes --no-install-recommends \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin

# An unprivileged user with a fixed uid, so volume and secret permissions are predictable.
# Its home is writable because gunicorn puts its control socket in ~/.gunicorn.
RUN groupadd --system --gid 10001 minitwit \
    && useradd --system --uid 10001 --gid minitwit --create-home --home-dir /home/minitwit \
       --shell /usr/sbin/nologin minitwit

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MINITWIT_ENV=production \
    APP_VERSION=${VERSION} \
    HOST=0.0.0.0 \
    PORT=5000 \
    METRICS_PORT=9200 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus_multiproc \
    DRAIN_FILE=/tmp/minitwit-draining \
    DRAIN_SECONDS=12

COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The code stays owned by root: the app user can read it but not change it.
COPY service/ /app/
# Flask's instance folder is the only place the app may write (it creates it on start).
RUN install -d -o minitwit -g minitwit /app/instance
COPY docker/entrypoint.sh /usr/local/bin/minitwit-entrypoint

# Numeric, so the runtime needs no passwd lookup (the minitwit user created above).
USER 10001:10001
# 5000: the web app (routed by Traefik); 9200: Prometheus metrics (internal network only).
EXPOSE 5000 9200

# Python, not curl: the image carries no HTTP client. Swarm and Traefik only route to healthy tasks.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python3", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:5000/health', timeout=3).status != 200)"]

ENTRYPOINT ["minitwit-entrypoint"]
CMD ["gunicorn", "-c", "gunicorn.conf.py", "minitwit:create_app()"]
