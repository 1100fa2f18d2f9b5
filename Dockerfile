# Chappe: a static binary on a minimal image, running as a non-root user
# with its data in a volume.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/chappe ./cmd/chappe \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/chappe /usr/local/bin/chappe
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
VOLUME ["/data"]
# 8008: client-server API (put TLS in front of it).
EXPOSE 8008
ENTRYPOINT ["/usr/local/bin/chappe"]
# Set server_name in /data/chappe.yaml (written at first start) or pass --config.
CMD ["serve", "--data-dir", "/data", "--listen", "0.0.0.0:8008"]
