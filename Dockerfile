# The meshfed image (ghcr.io/meshfed/meshfed:<version>): hub and agent, as
# `meshfed install` runs them (docs/kubernetes.md#the-image). Two stages: the
# build stage compiles TypeScript with the dev dependencies; the runtime stage
# holds only production dependencies, the compiled dist/src, the protos and
# the bin, and runs as a fixed non-root UID (the manifests' runAsUser, 10001).
# Nothing is written to the image's filesystem at run time: the data directory
# is a volume (/var/lib/meshfed) and /tmp an emptyDir.

FROM node:20 AS build
WORKDIR /src
COPY package.json package-lock.json ./
COPY scripts ./scripts
# `prepare` (scripts/prepare.js) builds nothing yet: the sources are copied below.
RUN npm ci
COPY tsconfig.json ./
COPY bin ./bin
COPY proto ./proto
COPY src ./src
COPY test ./test
COPY bench ./bench
RUN npm run build

FROM node:20-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
COPY scripts ./scripts
# Production dependencies only; `prepare` sees no typescript and no sources and builds nothing.
RUN npm ci --omit=dev && npm cache clean --force
COPY bin ./bin
COPY proto ./proto
COPY --from=build /src/dist/src ./dist/src
RUN groupadd --system --gid 10001 meshfed \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/meshfed --no-create-home --shell /usr/sbin/nologin meshfed \
 && mkdir -p /var/lib/meshfed /var/run/meshfed \
 && chown 10001:10001 /var/lib/meshfed
USER 10001:10001
EXPOSE 7400 7401 15010 15011
ENTRYPOINT ["node", "/app/bin/meshfed.js"]
CMD ["--help"]
