"""The company trace: a lot's genealogy across sites, read from the central store.

Walks each site's `central.genealogy_link` rows within that site, and crosses to another
site where a lot shipped from one site was received at the other (the same code, the
shipping side naming the receiver and the receiving side naming the origin). Read-only;
a lot code found at two sites without such a shipment is two lots, never joined.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.orm import Session

from transactional.errors import NotFound, RuleViolation
from transactional.genealogy import DIRECTIONS, Direction

START = text("""
SELECT l.site_id, l.id, s.code FROM central.material_lot l
JOIN central.site s ON s.id = l.site_id
WHERE l.code = :code AND (CAST(:site AS text) IS NULL OR s.code = :site)
ORDER BY s.code
""")

# One step from a lot: within its site along genealogy links, or to its other half at
# another site. Each link is kept once (UNION), so the walk ends even on a cycle.
_WALK = """
WITH RECURSIVE edge AS (
    {first}
  UNION
    SELECT n.* FROM edge e CROSS JOIN LATERAL ({next}) n
)
SELECT e.parent_site, e.parent_lot, ps.code, pl.code,
       e.child_site, e.child_lot, cs.code, cl.code, e.kind, e.quantity
FROM edge e
JOIN central.site ps ON ps.id = e.parent_site
JOIN central.material_lot pl ON pl.site_id = e.parent_site AND pl.id = e.parent_lot
JOIN central.site cs ON cs.id = e.child_site
JOIN central.material_lot cl ON cl.site_id = e.child_site AND cl.id = e.child_lot
ORDER BY ps.code, pl.code, cs.code, cl.code
"""
_FORWARD_STEP = """
    SELECT g.site_id AS parent_site, g.parent_lot_id AS parent_lot, g.site_id AS child_site,
           g.child_lot_id AS child_lot, g.kind, g.quantity
    FROM central.genealogy_link g
    WHERE g.site_id = {site} AND g.parent_lot_id = {lot}
  UNION ALL
    SELECT a.site_id, a.id, b.site_id, b.id, 'shipped', NULL::double precision
    FROM central.material_lot a
    JOIN central.site sa ON sa.id = a.site_id
    JOIN central.site sb ON sb.code = a.shipped_to_site
    JOIN central.material_lot b
      ON b.site_id = sb.id AND b.code = a.code AND b.origin_site = sa.code
    WHERE a.site_id = {site} AND a.id = {lot}
"""
_BACKWARD_STEP = """
    SELECT g.site_id AS parent_site, g.parent_lot_id AS parent_lot, g.site_id AS child_site,
           g.child_lot_id AS child_lot, g.kind, g.quantity
    FROM central.genealogy_link g
    WHERE g.site_id = {site} AND g.child_lot_id = {lot}
  UNION ALL
    SELECT a.site_id, a.id, b.site_id, b.id, 'shipped', NULL::double precision
    FROM central.material_lot b
    JOIN central.site sb ON sb.id = b.site_id
    JOIN central.site sa ON sa.code = b.origin_site
    JOIN central.material_lot a
      ON a.site_id = sa.id AND a.code = b.code AND a.shipped_to_site = sb.code
    WHERE b.site_id = {site} AND b.id = {lot}
"""


def _walk(step: str, end: str) -> TextClause:
    return text(_WALK.format(
        first=step.format(site="CAST(:site_id AS smallint)", lot="CAST(:lot_id AS integer)"),
        next=step.format(site=f"e.{end}_site", lot=f"e.{end}_lot")))


WALKS: dict[Direction, TextClause] = {
    "forward": _walk(_FORWARD_STEP, "child"),
    "backward": _walk(_BACKWARD_STEP, "parent"),
}
LOTS = text("""
SELECT s.code AS site, l.code, m.code AS material, m.unit, l.quantity, l.status,
       l.origin_site, l.shipped_to_site
FROM unnest(CAST(:sites AS smallint[]), CAST(:ids AS integer[])) AS n (site_id, lot_id)
JOIN central.material_lot l ON l.site_id = n.site_id AND l.id = n.lot_id
JOIN central.site s ON s.id = l.site_id
LEFT JOIN central.material_definition m ON m.site_id = l.site_id AND m.id = l.material_id
""")

Place = tuple[str, str]  # (site code, lot code)


@dataclass(frozen=True)
class CompanyLot:
    site: str
    code: str
    material: str | None
    unit: str
    quantity: float
    status: str
    origin_site: str | None
    shipped_to_site: str | None


@dataclass(frozen=True)
class CompanyLink:
    parent: Place
    child: Place
    kind: str  # a genealogy kind, or 'shipped' between sites
    quantity: float | None


@dataclass(frozen=True)
class CompanyTrace:
    lot: Place
    links: dict[Direction, tuple[CompanyLink, ...]]
    lots: dict[Place, CompanyLot]

    def to_json(self) -> dict[str, Any]:
        def place(at: Place) -> dict[str, str]:
            return {"site": at[0], "lot": at[1]}

        return {
            **place(self.lot),
            **{direction: [{"parent": place(link.parent), "child": place(link.child),
                            "kind": link.kind, "quantity": link.quantity}
                           for link in links] for direction, links in self.links.items()},
            "lots": [{"site": lot.site, "lot": lot.code, "material": lot.material,
                      "unit": lot.unit, "quantity": lot.quantity, "status": lot.status,
                      "origin_site": lot.origin_site,
                      "shipped_to_site": lot.shipped_to_site}
                     for _, lot in sorted(self.lots.items())],
        }


def _start(session: Session, lot_code: str, site: str | None) -> tuple[int, int, str]:
    found = session.execute(START, {"code": lot_code, "site": site}).all()
    if not found:
        if session.execute(text("SELECT FROM central.site LIMIT 1")).first() is None:
            raise NotFound("this database holds no site's rows: run the company trace "
                           "against the central store (MES_DATABASE_URL)")
        where = f" at site {site}" if site is not None else ""
        raise NotFound(f"no lot {lot_code}{where} in the central store")
    if len(found) > 1:
        raise RuleViolation(f"lot {lot_code} is at sites {', '.join(r[2] for r in found)}: "
                            "name one with --site")
    return int(found[0][0]), int(found[0][1]), str(found[0][2])


def company_trace(session: Session, lot_code: str, site: str | None = None,
                  directions: Sequence[Direction] = DIRECTIONS) -> CompanyTrace:
    """The lot's genealogy over every site in the central store, in `directions`."""
    site_id, lot_id, site_code = _start(session, lot_code, site)
    links: dict[Direction, tuple[CompanyLink, ...]] = {}
    nodes = {(site_id, lot_id)}
    for direction in directions:
        rows = session.execute(WALKS[direction], {"site_id": site_id, "lot_id": lot_id}).all()
        links[direction] = tuple(
            CompanyLink((r[2], r[3]), (r[6], r[7]), r[8], r[9]) for r in rows)
        nodes |= {(r[0], r[1]) for r in rows} | {(r[4], r[5]) for r in rows}
    ordered = sorted(nodes)
    found = session.execute(LOTS, {"sites": [n[0] for n in ordered],
                                   "ids": [n[1] for n in ordered]}).mappings()
    lots = {(r["site"], r["code"]): CompanyLot(
        r["site"], r["code"], r["material"], r["unit"] or "", r["quantity"], r["status"],
        r["origin_site"], r["shipped_to_site"]) for r in found}
    return CompanyTrace((site_code, lot_code), links, lots)


def _lot_line(lot: CompanyLot) -> str:
    where = [f"shipped to site {lot.shipped_to_site}"] if lot.shipped_to_site else []
    where += [f"from site {lot.origin_site}"] if lot.origin_site else []
    status = lot.status.replace("_", " ")
    return (f"site {lot.site} lot {lot.code}: {lot.quantity:g} {lot.unit} of "
            f"{lot.material}, {', '.join([status, *where])}")


def render(trace: CompanyTrace) -> str:
    """The trace for people: each link with the site of both lots, then every lot."""
    heading = {"backward": "backward (where it came from):",
               "forward": "forward (where it went):"}
    lines = [f"company trace of lot {trace.lot[1]} at site {trace.lot[0]}"]
    for direction, links in trace.links.items():
        lines.append(heading[direction])
        for link in links or ():
            amount = f" {link.quantity:g}" if link.quantity is not None else ""
            lines.append(f"  site {link.parent[0]} lot {link.parent[1]} --{link.kind}{amount}"
                         f"--> site {link.child[0]} lot {link.child[1]}")
        if not links:
            lines.append("  nothing")
    lines.append("lots:")
    lines.extend(f"  {_lot_line(lot)}" for _, lot in sorted(trace.lots.items()))
    return "\n".join(lines)
