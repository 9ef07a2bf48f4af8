# seatkeeper: build the release binary, run it on a slim base.
#   docker build -t seatkeeper . && docker run -p 8080:8080 -v seatkeeper-data:/data seatkeeper
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY config ./config
COPY src ./src
RUN cargo build --release --locked && strip target/release/seatkeeper

FROM debian:bookworm-slim
RUN useradd --system --home /data seatkeeper && mkdir -p /data && chown seatkeeper /data
COPY --from=build /src/target/release/seatkeeper /usr/local/bin/seatkeeper
USER seatkeeper
# Inside a container the server must listen beyond loopback; data lives in the volume.
ENV SEATKEEPER_BIND=0.0.0.0:8080 SEATKEEPER_DATA_DIR=/data
VOLUME /data
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["seatkeeper"]
CMD ["serve"]
