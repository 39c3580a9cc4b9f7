# The worker image; docker-compose.yml builds it (or: docker build -t jsc-glidein-worker .). The build context
# leaves out deploy/ (keys, credentials) and the rest .dockerignore names. test/programs/dockerfile-build.test.ts runs
# this file's COPY and RUN steps outside Docker and starts the result's CMD.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY scripts/bundle-workflows.ts ./scripts/
# lib/ (tsc) and lib/workflow-bundle.js (the prebuilt workflow bundle), then only the runtime dependencies.
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/lib ./lib
COPY package.json ./
# The test sites' profiles, the default SITES_DIR; docker-compose.yml points SITES_DIR at deploy/sites instead.
COPY sites ./sites
# The base image's unprivileged user: uid 1000, gid 1000 (deploy/README.md: who must be able to read what).
USER node
# Prometheus metrics when METRICS_ADDRESS is set (docker-compose.yml: 0.0.0.0:9464).
EXPOSE 9464
CMD ["node", "lib/worker.js"]
