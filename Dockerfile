# Multi-stage build of the sluice binary into a small non-root runtime image.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin sluice

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/sluice sluice \
    && mkdir -p /var/lib/sluice && chown sluice /var/lib/sluice
COPY --from=build /src/target/release/sluice /usr/local/bin/sluice
USER sluice
WORKDIR /var/lib/sluice
VOLUME ["/var/lib/sluice"]
# Kafka, native protocol (later), admin HTTP.
EXPOSE 9092 9192 9644
ENTRYPOINT ["/usr/local/bin/sluice"]
# Set SLUICE_ADVERTISED_KAFKA to the address clients use to reach the container.
CMD ["serve", "--data-dir", "/var/lib/sluice", "--kafka-listen", "0.0.0.0:9092", "--admin-listen", "0.0.0.0:9644"]
