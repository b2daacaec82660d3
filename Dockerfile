# syntax=docker/dockerfile:1
# callbridge: one tenant's bridge per container.
#   docker build -t callbridge .
#   docker run --env-file secrets.env -v ./tenant.toml:/etc/callbridge/tenant.toml:ro -p 8080:8080 callbridge

# The base image is pinned by digest (a tag moves; a digest is one exact image). It is the
# multi-arch index digest of python:3.11.7-slim-bookworm, the interpreter the suite runs on.
# To refresh (then run `make image-check` and commit both FROM lines together):
#   docker buildx imagetools inspect python:3.11-slim-bookworm --format '{{json .Manifest.Digest}}'
#   (or: crane digest python:3.11-slim-bookworm)
# ── builder: resolve and install everything into a self-contained venv ──────────────────────
FROM python:3.11.7-slim-bookworm@sha256:8f64a67710f3d981cf3008d6f9f1dbe61accd7927f165f4e37ea3f8b883ccc3f AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/callbridge
ENV PATH=/opt/callbridge/bin:$PATH

WORKDIR /src
# Dependencies first, hash-checked from the runtime lock (no dev tools; `make lock` writes
# it), so that a code change does not re-download them; the project then goes in --no-deps.
COPY requirements-runtime.lock ./
RUN pip install --no-cache-dir --no-deps --require-hashes -r requirements-runtime.lock \
    && pip check
COPY pyproject.toml README.md ./
COPY callbridge/__init__.py callbridge/py.typed ./callbridge/
COPY callbridge/bridge ./callbridge/bridge
COPY callbridge/adapters ./callbridge/adapters
COPY callbridge/service ./callbridge/service
RUN pip install --no-cache-dir --no-deps . \
    && python -m compileall -q /opt/callbridge/lib

# ── runtime: the venv only; no compilers, no pip cache, not root ────────────────────────────
FROM python:3.11.7-slim-bookworm@sha256:8f64a67710f3d981cf3008d6f9f1dbe61accd7927f165f4e37ea3f8b883ccc3f

LABEL org.opencontainers.image.title="callbridge" \
      org.opencontainers.image.description="Telcoflow calls bridged to Gemini Live / ADK agents"

RUN groupadd --system --gid 10001 callbridge \
    && useradd --system --uid 10001 --gid callbridge --no-create-home --home-dir /var/lib/callbridge callbridge \
    && mkdir -p /var/lib/callbridge /etc/callbridge \
    && chown callbridge:callbridge /var/lib/callbridge

COPY --from=builder /opt/callbridge /opt/callbridge
ENV PATH=/opt/callbridge/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# Relative sqlite paths (records, ADK sessions) land here; mount a volume to keep them.
WORKDIR /var/lib/callbridge
USER 10001:10001
EXPOSE 8080

# slim has no curl: probe with the interpreter that is already there.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]

# Exec form: callbridge is PID 1 and receives SIGTERM itself (it drains, then exits 0).
STOPSIGNAL SIGTERM
ENTRYPOINT ["callbridge", "serve"]
CMD ["--config", "/etc/callbridge/tenant.toml"]
