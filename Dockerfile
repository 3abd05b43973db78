# Canarist's one image: `canarist api`, `canarist worker` and `canarist beat` all run from it, in
# docker-compose.yml and in deploy/ (image canarist:0.1.0). Build: docker build -t canarist:0.1.0 .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
RUN groupadd --system --gid 10001 canarist \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp canarist

# Only what `pip install .` needs (pyproject names README.md as the readme); tests, benchmarks and
# deploy/ stay out of the image.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY analyzer ./analyzer
COPY workers ./workers
COPY canarist ./canarist
RUN pip install . && rm -rf /src

# The shipped policies, so the image runs on its own; compose and Kubernetes mount theirs over it.
COPY policies /etc/canarist/policies
ENV CANARIST_POLICY_DIR=/etc/canarist/policies

# /tmp is the only place written (celery beat's schedule): a tmpfs / emptyDir when the root
# filesystem is read-only.
WORKDIR /tmp
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["canarist"]
CMD ["--help"]
