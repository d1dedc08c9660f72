# Container image of attempts-server: built on Debian 12, run on a slim Debian 12
# with only the shared libraries it needs, as a non-root user.
#   docker build -t attempts-server .        (docker-compose.yml does this for you)

# ---- build -------------------------------------------------------------------
FROM debian:12 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config ca-certificates \
      libboost1.81-dev libboost-program-options1.81-dev \
      libpqxx-dev nlohmann-json3-dev libspdlog-dev libtoml11-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The server, and attempts-token for development keys and tokens (docker-compose.yml's keys
# service): the tests need a PostgreSQL and GoogleTest, and run in CI (scripts/test.sh).
RUN rm -rf build \
 && cmake --preset release -DATTEMPTS_BUILD_TESTS=OFF \
 && cmake --build --preset release --target attempts-server attempts-token -j"$(nproc)" \
 && strip build/release/attempts-server build/release/tools/attempts-token

# ---- runtime -----------------------------------------------------------------
FROM debian:12-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libpqxx-6.4 libpq5 libspdlog1.10 libfmt9 libboost-program-options1.81.0 libssl3 \
      curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin attempts
COPY --from=build /src/build/release/attempts-server /usr/local/bin/attempts-server
COPY --from=build /src/build/release/tools/attempts-token /usr/local/bin/attempts-token
# Fail the image build, not the first start, if a shared library is missing.
RUN if ldd /usr/local/bin/attempts-server /usr/local/bin/attempts-token | grep 'not found'; then \
      exit 1; \
    fi
USER attempts
# attempts-server reads each option from the environment too (--listen -> LISTEN, ...).
ENV LISTEN=0.0.0.0:8000 \
    DATABASE_URL=postgresql://postgres@postgres:5432/attempts
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8000/healthz >/dev/null || exit 1
ENTRYPOINT ["/usr/local/bin/attempts-server"]
