# tlsfleet node image. Multi-stage: the build stage compiles TypeScript with the dev
# dependencies; the runtime stage holds only dist/, bin/, web/ (the dashboard's files),
# haproxy/ (the lab reads its stick-table lines) and production dependencies, and runs as the unprivileged "node" user (uid 1000) of the official image.
#   docker build -t tlsfleet .
#   docker compose up            (the lab farm: docker-compose.yml)

FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY src ./src
COPY benchmarks ./benchmarks
RUN npx tsc -p tsconfig.json

FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts && npm cache clean --force
COPY bin ./bin
COPY haproxy ./haproxy
COPY web ./web
COPY --from=build /src/dist/src ./dist/src
COPY --from=build /src/dist/benchmarks ./dist/benchmarks
# State (the generated self-signed certificate) lives in a directory the node user owns.
RUN mkdir -p /var/lib/tlsfleet && chown node:node /var/lib/tlsfleet
USER node
ENV TLSFLEET_STATE_DIR=/var/lib/tlsfleet
EXPOSE 8443 8444 8445 9443/udp
# Healthy while /health says the node itself is up (workers listening, warm join over, backend
# reachable), whatever its admin state: a node the operator drained or put in maintenance
# answers 503 there (HAProxy's httpchk must skip it) but must not be restarted for it.
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8445/health').then(r=>r.json()).then(b=>process.exit(b.health==='up'?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "/app/bin/tlsfleet.js"]
CMD ["node"]
