# reviews-api: one static-ish binary on a slim Debian. Build: docker build -t reviews-api .
# Run:   docker run -e DATABASE_URL=postgres://user@db:5432/reviews -p 3000:3000 reviews-api
FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, so a source change does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked 2>/dev/null || true
COPY . .
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin reviews-api

FROM debian:bookworm-slim
# curl: the health check below; the binary itself needs only libc.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* && useradd --system --home /app reviews
WORKDIR /app
COPY --from=build /src/target/release/reviews-api /usr/local/bin/reviews-api
COPY config ./config
USER reviews
ENV REVIEWS__SERVER__HOST=0.0.0.0 PORT=3000 RUST_LOG=info
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s CMD curl -fsS "http://127.0.0.1:$PORT/health" || exit 1
ENTRYPOINT ["reviews-api"]
CMD ["serve"]
