# vidcap in a container, in two stages on Debian 12:
#   build:   Rust, the FFmpeg headers, the encoder weights fetched by package name and
#            imported, then `scripts/install.sh install /opt/vidcap` (binary, models,
#            completions, man pages);
#   runtime: debian:bookworm-slim with only the FFmpeg shared libraries and the font the
#            contact sheets use, and /opt/vidcap copied to /usr/local (the binary finds its
#            models in /usr/local/share/vidcap/models).
# Build:  docker build -t vidcap .
# Run:    docker run --rm -v "$PWD:/data" vidcap caption /data/clip.mp4
FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends clang libclang-dev pkg-config \
      libavcodec-dev libavformat-dev libavutil-dev libswscale-dev python3 python3-pip \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked \
 && scripts/import_encoder.sh \
 && scripts/install.sh install /opt/vidcap

FROM debian:bookworm-slim AS runtime
# The shared libraries `ldd vidcap` resolves outside Debian's required base
# (tests/dockerfile.rs checks this list against the built binary).
ARG RUNTIME_LIBS="libavcodec59 libavformat59 libavutil57 libswscale6"
# Files read at run time: DejaVu Sans for `caption --sheet`.
ARG RUNTIME_FILES="fonts-dejavu-core"
RUN apt-get update \
 && apt-get install -y --no-install-recommends $RUNTIME_LIBS $RUNTIME_FILES \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/vidcap /usr/local
# Unprivileged by default; mounted footage and results only need to be readable/writable.
RUN useradd --create-home --uid 1000 vidcap
USER vidcap
WORKDIR /data
ENTRYPOINT ["vidcap"]
CMD ["--help"]
