# syntax=docker/dockerfile:1
# Build stage. NOTE: scripts/docker-build-check.sh extracts the
# `RUN CGO_ENABLED=0 go build ...` line below and runs it verbatim (with
# /out/nemidp replaced by a temp path), so this line is the single source of
# the build command. Keep it on one line starting with `RUN CGO_ENABLED=0 go build`.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/nemidp ./cmd/nemidp

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/nemidp /nemidp
ENV NEMIDP_ADDR=0.0.0.0:8080
EXPOSE 8080
USER nonroot
ENTRYPOINT ["/nemidp"]
CMD ["serve"]
