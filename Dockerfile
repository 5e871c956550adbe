# syntax=docker/dockerfile:1
# Phoenix: one small, static, non-root image holding every role.
#   docker build -t phoenix .
#   docker run -p 8080:8080 -p 8081:8081 -e PHOENIX_REDIS_URL=... -e PHOENIX_DATABASE_URL=... \
#     -e PHOENIX_ADMIN_PASSWORD=... -e PHOENIX_SECRET=... phoenix
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The same command as `make build`: static (no cgo), reproducible paths, stripped.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/phoenix ./cmd/phoenix

# distroless/static has CA certificates, tzdata and a "nonroot" passwd entry
# (uid 65532), and no shell: the health check is the binary itself.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/phoenix /phoenix
USER nonroot:nonroot
EXPOSE 8080 8081 8082 9090
ENV PHOENIX_LOG_FORMAT=json
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["/phoenix", "healthcheck"]
ENTRYPOINT ["/phoenix"]
CMD ["all"]
