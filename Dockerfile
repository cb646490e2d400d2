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
RUN make build && \
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/tmp:/sbin/nologin\n' > /passwd && \
    printf 'root:x:0:\nnonroot:x:65532:\n' > /group && \
    mkdir -m 1777 /tmpdir

FROM scratch
COPY --from=build /passwd /etc/passwd
COPY --from=build /group /etc/group
COPY --from=build /tmpdir /tmp
COPY --from=build /src/bin/logdoctor /logdoctor
# PATH starts with / so `kubectl debug ... -- logdoctor sockets` finds it.
ENV PATH=/:/usr/local/bin:/usr/bin:/bin HOME=/tmp TMPDIR=/tmp
WORKDIR /tmp
USER 65532:65532
ENTRYPOINT ["/logdoctor"]
CMD ["--help"]
