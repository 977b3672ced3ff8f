# reviews-api: one binary on a slim Debian, run as a non-root user. compose.yaml runs this image
# behind NGINX with a primary and a streaming replica, as deploy/local does on the host; both are
# built and run here by deploy/containers with Debian's podman (no Docker engine or registry on
# these machines: it builds stand-ins of the base images first).
#
# Build: docker build -t reviews-api .
# Run:   docker run -e DATABASE_URL=postgres://user@db:5432/reviews \
#          -e REVIEWS__DATABASE__REPLICA_URLS=postgres://user@replica:5432/reviews \
#          -p 3000:3000 reviews-api
FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, so a source change does not rebuild them: fetched (a failed download fails
# the build, with cargo's message), then built against an empty crate.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo fetch --locked \
    && cargo build --release --locked
# The whole checkout: the build compiles in sql/, config/default.toml, openapi.yaml and
# docs/swagger-ui/. .dockerignore keeps target/, datasets and local clusters out of the context.
COPY . .
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin reviews-api

FROM debian:bookworm-slim
# curl: the health check below; the binary itself needs only libc.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home-dir /app --shell /usr/sbin/nologin reviews \
    && mkdir -p /app && chown reviews: /app
WORKDIR /app
COPY --from=build /src/target/release/reviews-api /usr/local/bin/reviews-api
# Read at run time from the working folder (its defaults are compiled in too); add a
# config/local.toml here, or environment variables, to override.
COPY config ./config
USER reviews
ENV REVIEWS__SERVER__HOST=0.0.0.0 PORT=3000 RUST_LOG=info
EXPOSE 3000
# SIGTERM: drain for server.drain_secs (answers close their connections), then stop accepting,
# finish the requests in flight, close the pool and exit (within server.shutdown_timeout_secs).
# Give the container longer than the two together to stop (docker stop -t 20, compose's
# stop_grace_period).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS "http://127.0.0.1:$PORT/health" || exit 1
ENTRYPOINT ["reviews-api"]
CMD ["serve"]
