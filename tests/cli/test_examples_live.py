"""examples/ against the running sandbox: the providers read exactly the snapshots, and pushing the
plan makes every listing equal to what `invsync plan` prints for the snapshots (the operator's fixed
point)."""

from __future__ import annotations

from typing import Any

import msgspec
from examples_world import EXAMPLES, SANDBOX, example_secrets
from pydantic import BaseModel

from invsync.api.loader import load_and_validate
from invsync.engine import Listing, World, compute_plan, push_batches
from invsync.providers import SalesChannel, build_channel, build_source
from invsync.sandbox.server import run_sandbox
from invsync.snapshots import load_inventory, load_listings


def _at(resource: Any, url: str) -> Any:
    """The resource with its endpoint moved from the documented port to the test sandbox's."""
    spec: BaseModel = resource.spec
    return resource.model_copy(
        update={"spec": spec.model_copy(update={"endpoint": resource.spec.endpoint.replace(SANDBOX, url)})}
    )


async def _listings(channels: dict[str, SalesChannel]) -> list[Listing]:
    return [slot for channel in channels.values() for slot in await channel.list_listings()]


async def test_examples_converge_to_the_plan_of_the_snapshots() -> None:
    manifests = load_and_validate([str(EXAMPLES)])
    secrets = example_secrets()
    snapshot_world = World(
        manifests.rules,
        manifests.stores,
        manifests.warehouses,
        load_inventory(str(EXAMPLES / "snapshots" / "inventory.json")),
        load_listings(str(EXAMPLES / "snapshots" / "listings.json")),
    )
    expected = {
        (r.store, r.channel_warehouse_id, r.sku): r.desired
        for rp in compute_plan(snapshot_world).rules.values()
        for r in rp.rows
    }
    async with run_sandbox(EXAMPLES / "sandbox.yaml") as sb:
        stock = []
        for src in manifests.sources:
            assert src.spec.credentials_secret_ref is not None
            provider = build_source(_at(src, sb.url), secrets[src.spec.credentials_secret_ref.name])
            locations = [
                w.spec.location_id for w in manifests.warehouses if w.spec.source_ref.name == src.name
            ]
            stock += await provider.read_stock(locations)
            await provider.aclose()
        assert sorted(map(repr, stock)) == sorted(map(repr, snapshot_world.stock))
        channels = {
            st.name: build_channel(_at(st, sb.url), secrets[st.spec.credentials_secret_ref.name])
            for st in manifests.stores
        }
        try:
            live = await _listings(channels)
            # every product is on sale (TikTok ACTIVATE, Shopee NORMAL, Lazada Active); the snapshots
            # leave the status out
            assert {x.status for x in live} == {"ACTIVATE", "NORMAL", "Active"}
            assert all(x.writable for x in live)
            unstated = [msgspec.structs.replace(x, status="") for x in live]
            assert sorted(map(repr, unstated)) == sorted(map(repr, snapshot_world.listings))
            plan = compute_plan(World(manifests.rules, manifests.stores, manifests.warehouses, stock, live))
            for rule in manifests.rules:
                for batch in push_batches(plan.rules[rule.name].rows, rule.spec.push.order, listings=live):
                    outcomes = await channels[batch.store].push(batch.product_id, batch.updates)
                    assert all(o.ok for o in outcomes), outcomes
            after = await _listings(channels)
        finally:
            for channel in channels.values():
                await channel.aclose()
    converged = compute_plan(World(manifests.rules, manifests.stores, manifests.warehouses, stock, after))
    rows = [r for rp in converged.rules.values() for r in rp.rows]
    assert {(r.store, r.channel_warehouse_id, r.sku): r.live for r in rows} == expected
    assert all(r.live == r.desired for r in rows)
    ghost = [s for s in after if s.sku == "AS-GHOST"]
    assert [s.quantity for s in ghost] == [7]  # unmatched: left alone
