# syntax=docker/dockerfile:1.7
# stemhub: one image for both roles, `stemhub run` (hub) and `stemhub worker`.
#
#   docker build -t stemhub .                                   # CPU, local engine
#   docker build -t stemhub:gpu --build-arg EXTRAS=cluster,demucs \
#     --build-arg RUNTIME_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04 .
#
# Python comes from uv's managed builds in /opt/python, so the runtime stage can be any
# glibc base: Debian slim by default, an NVIDIA CUDA runtime for GPU workers.

ARG BUILDER_IMAGE=debian:bookworm-slim
ARG RUNTIME_IMAGE=debian:bookworm-slim
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.9.5

FROM ${UV_IMAGE} AS uv

FROM ${BUILDER_IMAGE} AS builder
ARG EXTRAS=cluster
ARG PYTHON_VERSION=3.11
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_PYTHON_PREFERENCE=only-managed \
    UV_PROJECT_ENVIRONMENT=/app/.venv
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=uv /uv /usr/local/bin/uv
RUN uv python install "${PYTHON_VERSION}"
WORKDIR /src
COPY . /src
# the lock pins everything; EXTRAS adds "demucs" (torch) for GPU workers
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --all-packages \
      $(echo "${EXTRAS}" | tr ',' '\n' | sed -n 's/^\(..*\)$/--extra \1/p')

FROM ${RUNTIME_IMAGE} AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 stemhub \
    && useradd --system --uid 10001 --gid stemhub --home-dir /var/lib/stemhub --create-home stemhub
COPY --from=builder /opt/python /opt/python
COPY --from=builder /app/.venv /app/.venv
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    STEMHUB_DATA_DIR=/var/lib/stemhub \
    STEMHUB_HTTP_HOST=0.0.0.0 \
    STEMHUB_HTTP_PORT=8750
USER stemhub:stemhub
WORKDIR /var/lib/stemhub
VOLUME ["/var/lib/stemhub"]
EXPOSE 8750
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('STEMHUB_HTTP_PORT', '8750')}/healthz\", timeout=4)"]
ENTRYPOINT ["stemhub"]
CMD ["run"]
