# The operator image. Build: `docker build -t REGISTRY/invsync:TAG .`, then point manifests/ at it
# (`cd manifests/core && kustomize edit set image invsync=REGISTRY/invsync:TAG`). The StatefulSet
# runs it as uid 65532 on a read-only root filesystem with only /tmp writable. Without Docker,
# `make deploy` builds the same image from Debian packages (controller/invsync/testing/image.py);
# tests/deploy/test_image.py keeps the two in step.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY controller ./controller
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
# uid 65532 needs a name: Python's home-directory lookups fail for a uid with none.
RUN groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /home/nonroot --shell /usr/sbin/nologin nonroot
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65532:65532
# 8080: /metrics, /healthz, /readyz; 8081: source webhook deliveries.
EXPOSE 8080 8081
ENTRYPOINT ["invsync"]
CMD ["run", "--all-namespaces"]
