# The lexecon image: `lexecon server` as a non-root user (docs/deployment.md).
#
#   docker build -t lexecon:0.1.0 .
#
# Build stage: the pinned toolchain (rust-toolchain.toml says 1.95.0) on Debian 12, so
# the binary needs no newer glibc than the runtime stage has. Protobuf code is checked
# in (crates/lexecon-proto/src/gen), SQLite is bundled and TLS is rustls with ring: no
# protoc, OpenSSL or cmake is needed.
FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p lexecon-cli --bin lexecon \
    && install -D -m 0755 target/release/lexecon /out/lexecon

# Runtime stage: Debian 12 slim. Not distroless, on purpose: the Kubernetes manifests
# run this same image as an init container that copies the node key out of its Secret
# with mode 0600 (`install`, from coreutils), and the compose file's healthcheck and
# one-shot init step use bash.
FROM debian:bookworm-slim
RUN groupadd --system --gid 65532 lexecon \
    && useradd --system --uid 65532 --gid 65532 --home-dir /var/lib/lexecon \
       --no-create-home --shell /usr/sbin/nologin lexecon \
    && install -d -o 65532 -g 65532 -m 0700 /var/lib/lexecon
COPY --from=build /out/lexecon /usr/local/bin/lexecon
# Listen on every interface inside the container (the defaults are loopback only); the
# metrics port serves /healthz, /readyz and /metrics in plaintext, always.
ENV LEXECON_SERVER__LISTEN=0.0.0.0:50051 \
    LEXECON_SERVER__METRICS_LISTEN=0.0.0.0:9464 \
    LEXECON_LOG__FORMAT=json
USER 65532:65532
WORKDIR /var/lib/lexecon
# The data directory: lexecon.toml, policy.toml, keys/, admin.token and, without
# database.url, the SQLite database. A volume, so that it outlives the container.
VOLUME ["/var/lib/lexecon"]
EXPOSE 50051 9464
# `docker run IMAGE` serves; `docker run IMAGE migrate` (or init, apikey, ...) runs
# another subcommand with the same configuration.
ENTRYPOINT ["/usr/local/bin/lexecon"]
CMD ["server", "--data-dir", "/var/lib/lexecon"]
