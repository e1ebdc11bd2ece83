# aggjobs: one image for every role (migrate, worker, beat, dashboard); the command picks the role.
# Not built in CI (no Docker engine there): `docker compose config` validates the compose file.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production APP_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY migrations ./migrations
RUN ln -s /app/dist/cli/main.js /usr/local/bin/aggjobs && chmod +x /app/dist/cli/main.js
USER node
EXPOSE 5555
# Exit 0 healthy, 1 degraded, 2 unhealthy: only "unhealthy" fails the container check.
HEALTHCHECK --interval=30s --timeout=20s --start-period=30s --retries=3 \
  CMD aggjobs health > /dev/null; [ $? -ne 2 ]
ENTRYPOINT ["aggjobs"]
CMD ["--help"]
