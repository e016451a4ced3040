# syntax=docker/dockerfile:1
# The image of every Python service, one build argument choosing which. The build context is the
# repository root (the uv workspace):
#   docker build --build-arg SERVICE=contacts    -t crm/contacts:0.1.0 .
#   docker build --build-arg SERVICE=servicedesk -t crm/servicedesk:0.1.0 .
#   docker build --build-arg SERVICE=sales       -t crm/sales:0.1.0 .
#   docker build --build-arg SERVICE=metrics     -t crm/metrics:0.1.0 .
#   docker build --build-arg SERVICE=gateway     -t crm/gateway:0.1.0 .
# SERVICE names the package `crm-<SERVICE>` (services/*/pyproject.toml) and the module
# `crm_<SERVICE>`; the last stage, `runtime-<SERVICE>`, holds what differs: ports and entrypoint.
# Runs as uid 10001 on a read-only root filesystem; nothing at run time needs a shell
# (exec-form entrypoint, native gRPC probes, preStop `sleep` action in the Deployment).
# The entrypoint serves; arguments select a command instead, e.g. the metrics replay Job's
# `replay --namespace ... --definitions ...` or the gateway's `credentials api-key ...` (the
# console script `crm-<SERVICE>` is on PATH too).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG SERVICE

# --- the gateway dashboard's Chart.js, from npm at the version package-lock.json pins ------------
FROM node:20-bookworm-slim AS web-assets
WORKDIR /web
COPY services/gateway/web/package.json services/gateway/web/package-lock.json services/gateway/web/.npmrc ./
RUN npm ci --no-audit --no-fund --ignore-scripts

# --- build: the locked workspace, resolved into a self-contained virtual environment ------------
FROM ${PYTHON_IMAGE} AS build
ARG SERVICE
ARG UV_VERSION=0.13.8
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv

# uv from PyPI at the version the Makefile pins, not from another image.
RUN python -m pip install "uv==${UV_VERSION}"

WORKDIR /src
# uv reads the whole workspace (every member's pyproject.toml) even for one package, so the
# members come in whole; .dockerignore keeps tests, caches and local state out. The dashboard's
# static files (src/crm_gateway/web/) are inside the gateway's package, so its wheel carries
# them (the other services' environments do not install that package).
COPY pyproject.toml uv.lock ./
COPY libs/ libs/
COPY services/ services/
COPY --from=web-assets /web/node_modules/chart.js/dist/chart.umd.js services/gateway/src/crm_gateway/web/static/chart.umd.js

# --frozen: exactly uv.lock, never re-resolved. --no-editable: the workspace packages are
# installed into the venv as wheels, so the venv alone is the application.
# Byte-code is compiled here because the root filesystem is read-only at run time.
RUN --mount=type=cache,target=/root/.cache/uv \
    test -n "${SERVICE}" && \
    uv sync --frozen --no-dev --no-editable --package crm-${SERVICE}

# --- run time: the venv on the same base image, as a non-root user ------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG SERVICE

LABEL org.opencontainers.image.title="crm-${SERVICE}" \
      org.opencontainers.image.description="CRM ${SERVICE} service" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN groupadd --system --gid 10001 crm \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin crm

# Owned by root and not writable by the service: the code cannot be changed at run time.
COPY --from=build /app/.venv /app/.venv

ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

WORKDIR /app
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001

# --- what differs per service: its ports and its module (exec form takes no variables) ---------
FROM runtime AS runtime-contacts
ENV GRPC_LISTEN_ADDRESS=0.0.0.0:50051
EXPOSE 50051
ENTRYPOINT ["python", "-m", "crm_contacts"]

FROM runtime AS runtime-servicedesk
ENV GRPC_LISTEN_ADDRESS=0.0.0.0:50051
EXPOSE 50051
ENTRYPOINT ["python", "-m", "crm_servicedesk"]

FROM runtime AS runtime-sales
ENV GRPC_LISTEN_ADDRESS=0.0.0.0:50051
EXPOSE 50051
ENTRYPOINT ["python", "-m", "crm_sales"]

FROM runtime AS runtime-metrics
ENV GRPC_LISTEN_ADDRESS=0.0.0.0:50051
EXPOSE 50051
ENTRYPOINT ["python", "-m", "crm_metrics"]

# gRPC, then JSON/HTTP (the OpenAPI document, the dashboard, /healthz and /readyz).
FROM runtime AS runtime-gateway
ENV GRPC_LISTEN_ADDRESS=0.0.0.0:50050 \
    HTTP_LISTEN_ADDRESS=0.0.0.0:8080
EXPOSE 50050 8080
ENTRYPOINT ["python", "-m", "crm_gateway"]

# The image: the stage of the service asked for (an unknown SERVICE fails the build here).
FROM runtime-${SERVICE}
