# Production image: the jobline package and nothing embedded (no Tansu, no SecantusDB).
# Build stage fetches GraphiQL's browser assets (npm) so the playground works offline.
FROM python:3.11.11-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schema schema
COPY runtime runtime
COPY processors processors
COPY projections projections
COPY api api
COPY standin standin
COPY jobline jobline
COPY scripts scripts
RUN pip install --no-cache-dir "strawberry-graphql>=0.341,<0.342" \
 && python scripts/fetch_graphiql_assets.py \
 && pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11.11-slim-bookworm
RUN useradd --system --uid 10001 --no-create-home jobline
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER jobline
# Every command serves here: the API, or a processor's /healthz, /readyz and /metrics.
ENV JOBLINE_HOST=0.0.0.0 JOBLINE_PORT=8000 PYTHONUNBUFFERED=1
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; u.urlopen(f\"http://127.0.0.1:{os.environ['JOBLINE_PORT']}/healthz\", timeout=4)"]
ENTRYPOINT ["jobline"]
CMD ["api"]
