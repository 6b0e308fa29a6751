# Portcullis gateway image: a static binary on a distroless, non-root base.
#
#   docker build -t portcullis --build-arg VERSION=$(git describe --tags --always) .
#
# The image ships no configuration and no policy: mount them at
# /etc/portcullis (config.yaml, and policies/ beside it). Inside a container
# the gateway must listen on 0.0.0.0:8080, which the published demo key
# refuses, so use a configuration with keys of your own. See docs/operations.md.

FROM golang:1.26 AS build
WORKDIR /src

# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download

COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/portcullis ./cmd/portcullis \
 && mkdir -p /out/state

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/portcullis /usr/local/bin/portcullis
# Writable by the image's user (nonroot, 65532): the place for the audit file.
COPY --from=build --chown=65532:65532 /out/state /var/lib/portcullis
USER 65532:65532
WORKDIR /var/lib/portcullis
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/portcullis"]
CMD ["serve", "--config", "/etc/portcullis/config.yaml"]
