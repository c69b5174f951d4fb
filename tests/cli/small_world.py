"""The small offline world the plan and diff tests share: one HTTP source with location jkt, its
Warehouse jkt, and two TikTok Stores s1 and s2 (rules are written per test)."""

WORLD = """\
    apiVersion: invsync.dev/v1alpha1
    kind: InventorySource
    metadata: {name: shop}
    spec: {provider: http, endpoint: "http://127.0.0.1:1/erp"}
    ---
    apiVersion: invsync.dev/v1alpha1
    kind: Warehouse
    metadata: {name: jkt}
    spec: {sourceRef: {name: shop}, locationId: jkt}
    ---
    apiVersion: invsync.dev/v1alpha1
    kind: Store
    metadata: {name: s1}
    spec: {platform: tiktok, shopCipher: A, credentialsSecretRef: {name: t}}
    ---
    apiVersion: invsync.dev/v1alpha1
    kind: Store
    metadata: {name: s2}
    spec: {platform: tiktok, shopCipher: B, credentialsSecretRef: {name: t}}
    """
