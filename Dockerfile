# syntax=docker/dockerfile:1
# seatkeeper in a container (see README, "Docker"):
#   docker build -t seatkeeper .
#   docker run -d --name seatkeeper -p 8080:8080 -v seatkeeper-data:/data seatkeeper
#   docker exec seatkeeper cat /data/operator_token
# Configuration is by SEATKEEPER_* variables (`docker run --rm seatkeeper serve --help`).

FROM rust:1.95-slim-trixie AS build
WORKDIR /src
# Dependencies first, in a layer of their own: it is rebuilt only when the manifest, the
# lock file or the vendored sled change, not on every source edit. Empty targets stand in
# for the crate's own sources, which cargo needs to exist to read the manifest.
COPY Cargo.toml Cargo.lock ./
COPY vendor ./vendor
RUN mkdir -p src tests/api \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs tests/api/main.rs \
    && cargo build --release --locked \
    && rm -rf src tests target/release/.fingerprint/seatkeeper-* target/release/deps/*seatkeeper*
COPY config ./config
COPY src ./src
COPY tests/api/main.rs ./tests/api/main.rs
RUN cargo build --release --locked \
    && strip target/release/seatkeeper \
    && mkdir /data

FROM gcr.io/distroless/cc-debian13:nonroot
COPY --from=build /src/target/release/seatkeeper /usr/local/bin/seatkeeper
# A fresh named volume takes this directory's owner (65532, distroless's nonroot). A host
# directory must be writable by the uid the server runs as: `chown 65532 DIR`, or run as
# its owner with `docker run --user "$(id -u)"` (the server refuses a data directory that
# belongs to another user).
COPY --from=build --chown=65532:65532 /data /data
USER 65532:65532
# Inside a container the server must listen beyond loopback; data lives in the volume.
ENV SEATKEEPER_BIND=0.0.0.0:8080 \
    SEATKEEPER_DATA_DIR=/data
VOLUME /data
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["seatkeeper", "health"]
ENTRYPOINT ["seatkeeper"]
CMD ["serve"]
