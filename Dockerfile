# Multi-stage build of the sluice binary into a small non-root runtime image.
#   docker build -t sluice .        (or: docker compose -f config/docker-compose.yml up -d)
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# The release profile keeps line tables for profiling (about 70 MB); the image gets the
# stripped binary (about 14 MB).
ENV CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=symbols
RUN cargo build --release --locked --bin sluice

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/sluice sluice \
    && mkdir -p /var/lib/sluice && chown sluice /var/lib/sluice
COPY --from=build /src/target/release/sluice /usr/local/bin/sluice
USER sluice
WORKDIR /var/lib/sluice
VOLUME ["/var/lib/sluice"]
# Kafka, native protocol, admin HTTP (/health, /ready, /metrics, /v1).
EXPOSE 9092 9192 9644
# Settings as SLUICE_* variables (not flags), so `docker run -e` and compose can override any
# of them. Set SLUICE_ADVERTISED_KAFKA to the address clients use to reach the container.
ENV SLUICE_DATA_DIR=/var/lib/sluice \
    SLUICE_KAFKA_LISTEN=0.0.0.0:9092 \
    SLUICE_NATIVE_LISTEN=0.0.0.0:9192 \
    SLUICE_ADMIN_LISTEN=0.0.0.0:9644
# Healthy once /ready answers 200 (every partition log recovered). The image has no curl:
# `sluice health` asks the admin listener named by SLUICE_ADMIN_LISTEN (0.0.0.0 = this host).
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/usr/local/bin/sluice", "health"]
# In containers whose seccomp profile blocks io_uring, storage falls back to its POSIX backend
# by itself (logged at start-up); see config/docker-compose.yml for how to allow io_uring.
ENTRYPOINT ["/usr/local/bin/sluice"]
CMD ["serve"]
