# syntax=docker/dockerfile:1
# Phoenix: one small, static, non-root image holding every role, for
# linux/amd64 and linux/arm64. The build stage runs on the builder's own
# platform and cross-compiles (pure Go, no cgo), so no emulation is needed:
#   docker buildx build --platform linux/amd64,linux/arm64 -t ghcr.io/OWNER/phoenix:1.0.0 --push .
#   docker build -t phoenix .     # the builder's platform only
#   docker build --build-arg VERSION=$(git describe --tags --always) -t phoenix .
#   docker run -p 8080:8080 -p 8081:8081 -e PHOENIX_REDIS_URL=... -e PHOENIX_DATABASE_URL=... \
#     -e PHOENIX_ADMIN_PASSWORD=... -e PHOENIX_SECRET=... phoenix
FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Set by BuildKit from --platform (amd64, arm64).
ARG TARGETOS=linux TARGETARCH
# The version every role reports in its heartbeat (the admin's flow view);
# .git is not in the build context, so it is passed in (make build reads git).
ARG VERSION=dev
# The same command as `make build`: static (no cgo), reproducible paths, stripped.
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags="-s -w -X main.version=$VERSION" -o /out/phoenix ./cmd/phoenix

# distroless/static has CA certificates, tzdata and a "nonroot" passwd entry
# (uid 65532), and no shell: the health check is the binary itself. It is a
# multi-platform image: each target platform gets its own.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/phoenix /phoenix
USER nonroot:nonroot
EXPOSE 8080 8081 8082 9090
ENV PHOENIX_LOG_FORMAT=json
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["/phoenix", "healthcheck"]
ENTRYPOINT ["/phoenix"]
CMD ["all"]
