# The Keystone image: `ks gate` for CI (the GitHub Action and the GitLab component run it) and `ks serve`.
#
#   docker build -t keystone .
#   docker run --rm keystone ks gate --help
#
# BASE defaults to python:3.12-slim. Any Debian-based image works: one without Python's venv gets it from
# apt. Where Docker Hub cannot be reached, build on a local image, e.g.
#   docker build --build-arg BASE=debian:bookworm-slim -t keystone .
# The dependencies are exactly those of requirements/gate.txt (pinned, every file's hash checked; regenerate
# it with scripts/lock), then the package itself without dependencies.
# Where pip cannot reach PyPI either, put wheels in .wheels/ first: the project's own wheel and those of
# requirements/gate.txt, downloaded on the host (tests/gate/test_gate_image.py shows how); they install
# offline, hashes checked all the same.
# The package is installed from this checkout or its wheel, never by name: PyPI's `polarity-keystone` is
# another project.
ARG BASE=python:3.12-slim
FROM ${BASE}
SHELL ["/bin/sh", "-eu", "-c"]
RUN if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then \
      apt-get update; \
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv ca-certificates; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    python3 -m venv /opt/keystone
ENV PATH=/opt/keystone/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY . /src
RUN if [ -d /src/.wheels ]; then \
      set -- --no-index --find-links /src/.wheels; package=$(echo /src/.wheels/polarity_keystone-*.whl); \
    else \
      set --; package=/src; \
    fi; \
    pip install --no-cache-dir --require-hashes "$@" -r /src/requirements/gate.txt; \
    pip install --no-cache-dir --no-deps "$@" "$package"; \
    rm -rf /src; \
    ks --version
WORKDIR /work
CMD ["ks", "gate"]
