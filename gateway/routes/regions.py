"""The region tree: districts, towns and villages the caller may see."""

from __future__ import annotations

from fastapi import APIRouter

from gateway import access
from gateway.access import Area
from gateway.deps import ApiUser, Db
from gateway.errors import ApiError
from gateway.queries import places
from gateway.schemas.places import Region, RegionDetail, RegionNode, RegionTree

router = APIRouter(prefix="/api/v1/regions", tags=["regions"])


@router.get("")
async def list_regions(principal: ApiUser, conn: Db) -> RegionTree:
    """The region tree (district → town → village) the caller may see, nested."""
    access.need(principal, Area.REGIONS)
    rows = await places.regions(conn, access.region_filter(principal))
    nodes = {r.id: RegionNode(**Region.model_validate(r).model_dump(), children=[]) for r in rows}
    roots: list[RegionNode] = []
    for r in rows:
        parent = nodes.get(r.parent_id) if r.parent_id else None
        (parent.children if parent else roots).append(nodes[r.id])
    return RegionTree(items=roots)


@router.get("/{region_id}")
async def get_region(region_id: str, principal: ApiUser, conn: Db) -> RegionDetail:
    """One region and its children."""
    access.need(principal, Area.REGIONS)
    rows = await places.regions(conn, access.region_filter(principal))
    found = next((r for r in rows if r.id == region_id), None)
    if found is None:
        raise ApiError(404, "not_found", f"no region {region_id}")
    children = [Region.model_validate(r) for r in rows if r.parent_id == region_id]
    return RegionDetail(**Region.model_validate(found).model_dump(), children=children)
