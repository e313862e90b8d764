"""The domain model of SPEC 1-2 (pydantic). Imports neither numpy nor a solver."""

from placer.model.instance import (
    DIMS,
    Comm,
    DomainEntry,
    FabricEntry,
    GpuType,
    Instance,
    Job,
    Leases,
    MaxLatency,
    Offer,
    Overlap,
    Scope,
    Site,
    Spread,
    Topology,
    WanLink,
)
from placer.model.placement import LeaseGrant, PlacedJob, Placement, Status

__all__ = [
    "DIMS",
    "Comm",
    "DomainEntry",
    "FabricEntry",
    "GpuType",
    "Instance",
    "Job",
    "LeaseGrant",
    "Leases",
    "MaxLatency",
    "Offer",
    "Overlap",
    "PlacedJob",
    "Placement",
    "Scope",
    "Site",
    "Spread",
    "Status",
    "Topology",
    "WanLink",
]
