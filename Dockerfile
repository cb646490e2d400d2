# logdoctor for people who have Docker. Without a Docker daemon, `make image`
# builds the same image (bin/logdoctor-image.tar) with go-containerregistry.
#
#   docker build -t logdoctor .
#   docker run --rm --network host logdoctor sockets
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The whole root filesystem is assembled here, so that /tmp keeps its
# sticky world-writable mode (smoke's durable buffer lives there) when the
# tree is copied into the scratch image.
RUN make build && \
    mkdir -p /rootfs/etc /rootfs/tmp && chmod 1777 /rootfs/tmp && \
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/tmp:/sbin/nologin\n' > /rootfs/etc/passwd && \
    printf 'root:x:0:\nnonroot:x:65532:\n' > /rootfs/etc/group && \
    cp bin/logdoctor /rootfs/logdoctor

FROM scratch
COPY --from=build /rootfs/ /
# PATH starts with / so `kubectl debug ... -- logdoctor sockets` finds it.
ENV PATH=/:/usr/local/bin:/usr/bin:/bin HOME=/tmp TMPDIR=/tmp
WORKDIR /tmp
USER 65532:65532
ENTRYPOINT ["/logdoctor"]
CMD ["--help"]
