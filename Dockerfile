# A container for an Etch storage provider (docs/PROVIDER.md, "As a container"), built from
# this repository:
#
#   docker build -t etch .
#   docker run -d --name etch -p 18888:18888 -p 8080:8080 -v etch-data:/var/lib/etch etch
#
# The volume holds the store and the node key (created on first start). Arguments after the
# image name replace the default command's options, e.g. `… etch serve --store
# /var/lib/etch/node.etch --hold pinned --peer HOST:PORT`.

FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p etch-tools --bin etch \
 && install -m 0755 target/release/etch /usr/local/bin/etch

FROM debian:bookworm-slim
RUN useradd --system --home-dir /var/lib/etch --create-home etch
COPY --from=build /usr/local/bin/etch /usr/local/bin/etch
USER etch
ENV ETCH_HOME=/var/lib/etch
VOLUME /var/lib/etch
EXPOSE 18888 8080
# Docker sends SIGTERM on `docker stop`: etch serve finishes running commits and closes the store.
STOPSIGNAL SIGTERM
ENTRYPOINT ["etch"]
CMD ["serve", "--store", "/var/lib/etch/node.etch", "--listen", "0.0.0.0:18888", "--http", "0.0.0.0:8080"]
