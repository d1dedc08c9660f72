# Container image of attempts-server: built on Debian 12, run on a slim Debian 12
# with only the shared libraries it needs, as a non-root user.
#   docker build -t attempts-server .        (docker-compose.yml does this for you)
#   podman build --format docker -t attempts-server .   (podman's default OCI format drops HEALTHCHECK)
# scripts/container-test.sh builds and runs it in CI (README, "Container image").
#
# The bases are pinned by tag: Debian 12 "bookworm", which takes Debian's point releases and
# security updates. To pin them by digest (what your registry serves), pass
#   --build-arg BUILD_IMAGE=debian:12@sha256:... --build-arg RUNTIME_IMAGE=debian:12-slim@sha256:...
ARG BUILD_IMAGE=debian:12
ARG RUNTIME_IMAGE=debian:12-slim

# ---- build -------------------------------------------------------------------
FROM ${BUILD_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config ca-certificates ccache \
      libboost1.81-dev libboost-program-options1.81-dev \
      libpqxx-dev nlohmann-json3-dev libspdlog-dev libtoml11-dev libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The server, and attempts-token for development keys and tokens (docker-compose.yml's keys
# service): the tests need a PostgreSQL and GoogleTest, and run in CI (scripts/test.sh).
# A builder may lend a compiler cache at /ccache (`podman build --volume DIR:/ccache`, as
# scripts/container-test.sh does): the same objects, made faster the next time. Without the
# mount (docker build, docker-compose) nothing is cached.
RUN rm -rf build \
 && launcher= \
 && if [ -d /ccache ]; then export CCACHE_DIR=/ccache; launcher=-DCMAKE_CXX_COMPILER_LAUNCHER=ccache; fi \
 && cmake --preset release -DATTEMPTS_BUILD_TESTS=OFF $launcher \
 && cmake --build --preset release --target attempts-server attempts-token -j"$(nproc)" \
 && strip build/release/attempts-server build/release/tools/attempts-token

# ---- runtime -----------------------------------------------------------------
FROM ${RUNTIME_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libpqxx-6.4 libpq5 libspdlog1.10 libfmt9 libboost-program-options1.81.0 libssl3 zlib1g \
      curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin attempts
COPY --from=build /src/build/release/attempts-server /usr/local/bin/attempts-server
COPY --from=build /src/build/release/tools/attempts-token /usr/local/bin/attempts-token
# Fail the image build, not the first start, if a shared library is missing.
RUN if ldd /usr/local/bin/attempts-server /usr/local/bin/attempts-token | grep 'not found'; then \
      exit 1; \
    fi
# OCI annotations, declared last so that a new commit leaves the layers above in the cache;
# VERSION and REVISION come from the build (scripts/container-test.sh passes `git describe` and
# the commit).
ARG RUNTIME_IMAGE
ARG VERSION=unknown
ARG REVISION=unknown
LABEL org.opencontainers.image.title="attempts-server" \
      org.opencontainers.image.description="Saves students' exam answers: an asynchronous C++20 HTTP service on PostgreSQL" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="${RUNTIME_IMAGE}"
USER attempts
# attempts-server reads each option from the environment too (--listen -> LISTEN, ...).
ENV LISTEN=0.0.0.0:8000 \
    DATABASE_URL=postgresql://postgres@postgres:5432/attempts
EXPOSE 8000
# On the port of LISTEN, whatever it is set to when the container runs (${LISTEN##*:} is its
# port; the shell of the check expands it).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${LISTEN##*:}/healthz" >/dev/null || exit 1
ENTRYPOINT ["/usr/local/bin/attempts-server"]
