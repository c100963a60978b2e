# Production image: the jobline package and nothing embedded (no Tansu, no SecantusDB).
# Build stage fetches GraphiQL's browser assets (npm) so the playground works offline.
FROM python:3.11-slim AS build
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

FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home jobline
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER jobline
EXPOSE 8000
ENTRYPOINT ["jobline"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]
