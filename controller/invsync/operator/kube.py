"""The Kubernetes API calls the operator and the `sync` / `status` verbs make themselves.

kopf does the watching; status patches, Secret reads and annotations go through the official
client, run in a worker thread so the event loop never blocks on it.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

import kubernetes
from kubernetes.client.exceptions import ApiException

from ..api import GROUP, VERSION, InventorySource, Store
from ..errors import InputError
from ..providers import (
    ACCESS_TOKEN_EXPIRE_IN,
    Connections,
    RetryPolicy,
    TokenPair,
    TokenSink,
    build_channel,
    build_source,
)
from ..providers.base import InventorySourceProvider, SalesChannel

PLURALS = {
    "InventorySource": "inventorysources",
    "Warehouse": "warehouses",
    "Store": "stores",
    "SyncRule": "syncrules",
}


def load_config() -> kubernetes.client.ApiClient:
    """An API client from $KUBECONFIG / ~/.kube/config, or the in-cluster ServiceAccount."""
    try:
        kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        try:
            kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
        except kubernetes.config.ConfigException:
            raise InputError(
                "no Kubernetes configuration: set KUBECONFIG (make cluster-up writes .invsync/kubeconfig) "
                "or run inside a cluster"
            ) from None
    return kubernetes.client.ApiClient()


class Kube:
    """Thin async wrappers over the calls invsync makes; nothing here logs a Secret's value."""

    def __init__(self, api: kubernetes.client.ApiClient) -> None:
        self.core = kubernetes.client.CoreV1Api(api)
        self.custom = kubernetes.client.CustomObjectsApi(api)
        self.version = kubernetes.client.VersionApi(api)

    async def reachable(self, timeout: float = 2.0) -> bool:
        """The API server answers GET /version (readable by anyone) within `timeout`: /readyz."""
        try:
            await asyncio.to_thread(self.version.get_code, _request_timeout=timeout)
        except Exception:  # refused, timed out, TLS or HTTP error: not reachable for our purpose
            return False
        return True

    async def read_secret(self, namespace: str, name: str, timeout: float = 10.0) -> dict[str, str] | None:
        """The Secret's data; raises (never hangs) when the API server does not answer in `timeout`."""
        found = await self.get_secret(namespace, name, timeout)
        return found[1] if found is not None else None

    async def get_secret(
        self, namespace: str, name: str, timeout: float = 10.0
    ) -> tuple[str, dict[str, str]] | None:
        """The Secret's resourceVersion and data, by name (a GET: invsync never lists Secrets)."""
        try:
            secret = await asyncio.to_thread(
                self.core.read_namespaced_secret, name, namespace, _request_timeout=timeout
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        data = {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}
        data.update(secret.string_data or {})
        return str(secret.metadata.resource_version if secret.metadata else ""), data

    async def patch_secret(self, namespace: str, name: str, string_data: Mapping[str, str]) -> None:
        """Merge these keys into a Secret (a refreshed token pair: docs/security.md, "TikTok tokens")."""
        await asyncio.to_thread(
            self.core.patch_namespaced_secret, name, namespace, {"stringData": dict(string_data)}
        )

    async def patch_status(
        self, kind: str, namespace: str, name: str, status: Mapping[str, Any], timeout: float | None = None
    ) -> Any:
        """Merge-patch the status subresource; returns the updated object (None if it is gone).
        With `timeout`, the request is abandoned (raises) when the API server does not answer in time."""
        try:
            return await asyncio.to_thread(
                self.custom.patch_namespaced_custom_object_status,
                GROUP,
                VERSION,
                namespace,
                PLURALS[kind],
                name,
                {"status": dict(status)},
                _request_timeout=timeout,
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        obj = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind], name)
        return cast(dict[str, Any], obj)

    def list(self, kind: str, namespace: str) -> list[dict[str, Any]]:
        result = cast(
            dict[str, Any],
            self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind]),
        )
        return list(result.get("items", []))

    def annotate(self, kind: str, namespace: str, name: str, annotations: Mapping[str, str]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURALS[kind], name, {"metadata": {"annotations": dict(annotations)}}
        )


class KubePorts:
    """`reconcile.Ports` backed by the cluster's Secrets and the real platform clients."""

    def __init__(
        self,
        kube: Kube,
        read_secret: Callable[[str, str], Awaitable[Mapping[str, str] | None]] | None = None,
        retry: RetryPolicy | None = None,
        connections: Connections | None = None,
    ) -> None:
        self._kube = kube
        self._read_secret = read_secret or kube.read_secret
        self._retry = retry
        self._connections = connections  # the clients of every sync share its connections

    async def read_secret(self, namespace: str, name: str) -> Mapping[str, str] | None:
        return await self._read_secret(namespace, name)

    def channel(self, store: Store, secret: Mapping[str, str]) -> SalesChannel:
        return build_channel(
            store,
            secret,
            retry=self._retry,
            on_refresh=self._token_writer(store),
            connections=self._connections,
        )

    def _token_writer(self, store: Store) -> TokenSink:
        """Writes a refreshed pair back to the Store's Secret, so a restarted operator starts from it."""
        namespace, name = store.namespace, store.spec.credentials_secret_ref.name

        async def write(pair: TokenPair) -> None:
            await self._kube.patch_secret(
                namespace,
                name,
                {
                    "access_token": pair.access_token,
                    "refresh_token": pair.refresh_token,
                    ACCESS_TOKEN_EXPIRE_IN: str(pair.access_token_expire_in),
                },
            )

        return write

    def source(self, source: InventorySource, secret: Mapping[str, str] | None) -> InventorySourceProvider:
        return build_source(source, secret, retry=self._retry, connections=self._connections)
