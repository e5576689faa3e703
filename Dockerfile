# The operator image: `datajax-operator run`, non-root, on a pinned Python slim base.
# Build: docker build -t datajax/datajax-operator:0.1.0 .
FROM python:3.11.14-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
# Wheels of the package and its pinned-range dependencies, so the final stage needs no build tools.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11.14-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels datajax-operator \
    && rm -rf /wheels \
    && useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin datajax
# Numeric, so a pod's runAsNonRoot can verify it.
USER 65532:65532
# /healthz (liveness) and /metrics
EXPOSE 8080 9090
ENTRYPOINT ["datajax-operator", "run"]
CMD ["--all-namespaces", "--log-format", "json"]
