"""Product definitions from a TOML file: routings, bills of materials and inspection plans per
operation, the certifications and work instructions they call for, and who holds which
certification.

A file is checked whole (every problem listed with its key) against itself and against the
plant in the database, then written all or nothing, matched by code: loading the same file
again writes nothing. Products, certifications, documents and people's certifications are
never deleted here; a work instruction's text after its first revision is revised through
the document workflow, not through this file. The caller owns the transaction.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    StringConstraints,
    model_validator,
)
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from transactional.errors import FileProblems
from transactional.files import describe_validation_error, read_toml
from transactional.models import (
    Base,
    BomItem,
    Certification,
    Document,
    DocumentRevision,
    Equipment,
    InspectionPlan,
    InspectionResult,
    MaterialDefinition,
    OperationRun,
    Person,
    PersonCertification,
    ProductDefinition,
    RoutingOperation,
)
from transactional.permissions import Action, require
from transactional.plant import KeyedRows, LoadReport
from transactional.plant_file import Code, Name

PG_INT_MAX = 2**31 - 1


class ProductsFileError(FileProblems):
    """A products file that cannot be loaded; lists every problem found."""

    refusal = "products file rejected, nothing was written"


# -- the file ---------------------------------------------------------------------------------

Unit = Annotated[str, StringConstraints(min_length=1, max_length=16)]
Text = Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]
Count = Annotated[int, Field(gt=0, le=PG_INT_MAX)]


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class CertificationDef(_Entry):
    code: Code
    name: Name


class DocumentDef(_Entry):
    code: Code
    title: Name
    text: Text = Field(description="the first revision, released when the document is created")


class PersonCertificationDef(_Entry):
    person: Code = Field(description="badge of a person in the plant file")
    certification: Code
    valid_from: dt.date
    valid_until: dt.date | None = None

    @model_validator(mode="after")
    def _span_in_order(self) -> Self:
        if self.valid_until is not None and self.valid_until < self.valid_from:
            raise ValueError(f"valid_until {self.valid_until} is before valid_from "
                             f"{self.valid_from}")
        return self


class BomItemDef(_Entry):
    material: Code
    quantity_per_unit: PositiveFloat


class InspectionDef(_Entry):
    characteristic: Name
    nominal: float
    lower_spec: float
    upper_spec: float
    unit: Unit | None = None
    sample_size: Count = 1

    @model_validator(mode="after")
    def _limits_around_nominal(self) -> Self:
        if not self.lower_spec <= self.nominal <= self.upper_spec:
            raise ValueError(f"the limits must hold the nominal: lower_spec {self.lower_spec} "
                             f"<= nominal {self.nominal} <= upper_spec {self.upper_spec}")
        return self


class OperationDef(_Entry):
    sequence: Count
    code: Code
    name: Name
    work_center_type: Code
    standard_seconds_per_unit: PositiveFloat
    setup_seconds: Annotated[float, Field(ge=0)] = 0.0
    setup_family: Code | None = None
    output_material: Code | None = Field(
        default=None, description="what the operation makes; unset: the product's material")
    required_certification: Code | None = None
    work_instruction: Code | None = Field(default=None, description="a document code")
    bom: list[BomItemDef] = []
    inspections: list[InspectionDef] = []


class ProductDef(_Entry):
    code: Code
    name: Name
    material: Code
    operations: Annotated[list[OperationDef], Field(min_length=1)]


class ProductsDefinition(_Entry):
    certifications: list[CertificationDef] = []
    documents: list[DocumentDef] = []
    person_certifications: list[PersonCertificationDef] = []
    products: list[ProductDef] = []


def read_products_file(path: Path) -> ProductsDefinition:
    """Parse and check `path` on its own; raises ProductsFileError listing every problem.
    References to the plant (materials, people, work-center types) are checked on loading."""
    products = read_toml(path, ProductsDefinition, ProductsFileError,
                         functools.partial(describe_validation_error, label=_label))
    problems = check_products(products)
    if problems:
        raise ProductsFileError(path, problems)
    return products


def _label(node: Any) -> str:
    if isinstance(node, dict):
        for key in ("code", "characteristic", "material"):
            if isinstance(node.get(key), str):
                return f" ({node[key]})"
        if isinstance(node.get("person"), str):
            return f" ({node['person']}, {node.get('certification')})"
    return ""


def _duplicates(where: str, values: Iterable[Hashable], what: str) -> list[str]:
    return [f"{where}: duplicate {what} {value!r}"
            for value, count in Counter(values).items() if count > 1]


def _product_where(i: int, product: ProductDef) -> str:
    return f"products[{i}] ({product.code})"


def _operation_where(i: int, product: ProductDef, j: int, operation: OperationDef) -> str:
    return f"{_product_where(i, product)}.operations[{j}] ({operation.code})"


def check_products(products: ProductsDefinition) -> list[str]:
    """Problems a file has on its own: duplicates, and a routing that ends elsewhere."""
    problems = _duplicates("certifications", (c.code for c in products.certifications), "code")
    problems += _duplicates("documents", (d.code for d in products.documents), "code")
    problems += _duplicates("products", (p.code for p in products.products), "code")
    problems += [f"person_certifications: person {person!r} holds {certification!r} twice"
                 for (person, certification), count in Counter(
                     (pc.person, pc.certification)
                     for pc in products.person_certifications).items() if count > 1]
    for i, product in enumerate(products.products):
        where = _product_where(i, product)
        sequence_problems = _duplicates(f"{where}.operations",
                                        (o.sequence for o in product.operations), "sequence")
        problems += sequence_problems
        problems += _duplicates(f"{where}.operations", (o.code for o in product.operations),
                                "code")
        for j, operation in enumerate(product.operations):
            op_where = _operation_where(i, product, j, operation)
            problems += _duplicates(f"{op_where}.bom", (b.material for b in operation.bom),
                                    "material")
            problems += _duplicates(f"{op_where}.inspections",
                                    (c.characteristic for c in operation.inspections),
                                    "characteristic")
        last = max(product.operations, key=lambda o: o.sequence)
        if not sequence_problems and last.output_material not in (None, product.material):
            problems.append(f"{where}: the last operation ({last.sequence} {last.code}) makes "
                            f"{last.output_material!r}, but the product is {product.material!r}")
    return problems


# -- checks against the database ----------------------------------------------------------------

class _Plant:
    """What the file refers to that the database already holds, by code."""

    def __init__(self, session: Session) -> None:
        self.materials: dict[str, MaterialDefinition] = {
            m.code: m for m in session.scalars(select(MaterialDefinition))}
        self.people: dict[str, int] = dict(session.execute(select(Person.badge, Person.id)).all())
        self.work_center_types: set[str] = set(session.scalars(
            select(Equipment.work_center_type).where(Equipment.work_center_type.is_not(None))))
        self.certifications: set[str] = set(session.scalars(select(Certification.code)))
        self.documents: set[str] = set(session.scalars(select(Document.code)))


def _unknown(where: str, value: str | None, known: Iterable[str], what: str) -> list[str]:
    if value is None or value in known:
        return []
    return [f"{where}: unknown {what} {value!r}"]


def _check_against_plant(session: Session, products: ProductsDefinition) -> list[str]:
    plant = _Plant(session)
    certifications = plant.certifications | {c.code for c in products.certifications}
    documents = plant.documents | {d.code for d in products.documents}
    problems: list[str] = []
    for k, held in enumerate(products.person_certifications):
        where = f"person_certifications[{k}] ({held.person}, {held.certification})"
        problems += _unknown(f"{where}.person", held.person, plant.people, "person (badge)")
        problems += _unknown(f"{where}.certification", held.certification, certifications,
                             "certification")
    for i, product in enumerate(products.products):
        where = _product_where(i, product)
        problems += _unknown(f"{where}.material", product.material, plant.materials,
                             "material")
        made = plant.materials.get(product.material)
        if made is not None and made.kind not in ("product", "intermediate"):
            problems.append(f"{where}.material: {product.material!r} is a {made.kind} material; "
                            "a product makes a product or an intermediate material")
        for j, operation in enumerate(product.operations):
            op_where = _operation_where(i, product, j, operation)
            if operation.work_center_type not in plant.work_center_types:
                known = ", ".join(sorted(plant.work_center_types)) or "none: load the plant first"
                problems.append(f"{op_where}.work_center_type: no line of the plant has type "
                                f"{operation.work_center_type!r} (known: {known})")
            problems += _unknown(f"{op_where}.output_material", operation.output_material,
                                 plant.materials, "material")
            problems += _unknown(f"{op_where}.required_certification",
                                 operation.required_certification, certifications,
                                 "certification")
            problems += _unknown(f"{op_where}.work_instruction", operation.work_instruction,
                                 documents, "document")
            for b, item in enumerate(operation.bom):
                problems += _unknown(f"{op_where}.bom[{b}].material", item.material,
                                     plant.materials, "material")
    return problems + _check_documents(session, products) + _check_removals(session, products)


def _check_documents(session: Session, products: ProductsDefinition) -> list[str]:
    """A document's first revision must still say what the file says: the file creates a
    work instruction, and later revisions go through the document workflow."""
    first_text: dict[str, str] = {}
    for code, content in session.execute(
            select(Document.code, DocumentRevision.content)
            .join(DocumentRevision, DocumentRevision.document_id == Document.id)
            .order_by(Document.code, DocumentRevision.revision)):
        first_text.setdefault(code, content)
    problems = []
    for i, document in enumerate(products.documents):
        text = first_text.get(document.code)
        if text is not None and text != document.text:
            problems.append(f"documents[{i}] ({document.code}).text: differs from the "
                            "document's first revision; a work instruction is changed through "
                            "a new revision of the document, not through the products file")
    return problems


def _check_removals(session: Session, products: ProductsDefinition) -> list[str]:
    """Operations and inspection plans the file drops may go only if nothing was recorded
    against them."""
    in_file = {p.code: {o.code: {c.characteristic for c in o.inspections}
                        for o in p.operations} for p in products.products}
    operations = session.execute(
        select(ProductDefinition.code, RoutingOperation.code, RoutingOperation.id)
        .join(ProductDefinition, ProductDefinition.id == RoutingOperation.product_id)
        .where(ProductDefinition.code.in_(in_file))
        .where(select(OperationRun.id).where(OperationRun.operation_id == RoutingOperation.id)
               .exists())).all()
    problems = [f"products ({product}): operation {operation!r} has runs recorded against "
                "it and cannot be removed from the routing"
                for product, operation, _ in operations if operation not in in_file[product]]
    plans = session.execute(
        select(ProductDefinition.code, RoutingOperation.code, InspectionPlan.characteristic)
        .join(RoutingOperation, RoutingOperation.id == InspectionPlan.operation_id)
        .join(ProductDefinition, ProductDefinition.id == RoutingOperation.product_id)
        .where(ProductDefinition.code.in_(in_file))
        .where(select(InspectionResult.id).where(InspectionResult.plan_id == InspectionPlan.id)
               .exists())).all()
    problems += [f"products ({product}): operation {operation!r}: inspection "
                 f"{characteristic!r} has results recorded and cannot be removed"
                 for product, operation, characteristic in plans
                 if characteristic not in in_file[product].get(operation, set())]
    return problems


# -- writing ----------------------------------------------------------------------------------

def load_products(session: Session, products: ProductsDefinition,
                  source: str = "products file") -> LoadReport:
    """Create or update everything `products` defines, as the acting administrator;
    returns what changed.

    Raises ProductsFileError (naming `source`) listing every reference the database cannot
    satisfy, before anything is written.
    """
    require(session, Action.CHANGE_PLANT)
    problems = _check_against_plant(session, products)
    if problems:
        raise ProductsFileError(source, problems)
    report = LoadReport()
    writer = _Writer(session, report)
    certifications = writer.certifications(products)
    documents = writer.documents(products)
    writer.person_certifications(products, certifications)
    writer.products(products, certifications, documents)
    return report


class _Writer:
    def __init__(self, session: Session, report: LoadReport) -> None:
        self.session = session
        self.report = report

    def rows(self, model: type[Base], key: Callable[[Any], Hashable]) -> KeyedRows:
        return KeyedRows(self.session, self.report, model, key)

    def _ids(self, model: type[Any]) -> dict[str, int]:
        return dict(self.session.execute(select(model.code, model.id)).all())

    def certifications(self, products: ProductsDefinition) -> dict[str, int]:
        table = self.rows(Certification, lambda c: c.code)
        for certification in products.certifications:
            table.put(code=certification.code, name=certification.name)
        self.session.flush()
        return self._ids(Certification)

    def documents(self, products: ProductsDefinition) -> dict[str, int]:
        table = self.rows(Document, lambda d: d.code)
        rows = {d.code: table.put(code=d.code, title=d.title) for d in products.documents}
        self.session.flush()
        with_revisions = set(self.session.scalars(select(DocumentRevision.document_id)))
        for document in products.documents:
            row = rows[document.code]
            if row.id not in with_revisions:
                # The file's text is the work instruction operators start from: released.
                self.session.add(DocumentRevision(
                    document_id=row.id, revision=1, status="released", content=document.text,
                    released_at=func.now()))
                self.report.created[DocumentRevision.__tablename__] += 1
        self.session.flush()
        return self._ids(Document)

    def person_certifications(self, products: ProductsDefinition,
                              certifications: dict[str, int]) -> None:
        people = dict(self.session.execute(select(Person.badge, Person.id)).all())
        table = self.rows(PersonCertification, lambda p: (p.person_id, p.certification_id))
        for held in products.person_certifications:
            table.put(person_id=people[held.person],
                      certification_id=certifications[held.certification],
                      valid_from=held.valid_from, valid_until=held.valid_until)
        self.session.flush()

    def products(self, products: ProductsDefinition, certifications: dict[str, int],
                 documents: dict[str, int]) -> None:
        materials = self._ids(MaterialDefinition)
        table = self.rows(ProductDefinition, lambda p: p.code)
        operations = self.rows(RoutingOperation, lambda o: (o.product_id, o.code))
        bom = self.rows(BomItem, lambda b: (b.operation_id, b.material_id))
        plans = self.rows(InspectionPlan, lambda p: (p.operation_id, p.characteristic))
        loaded: set[int] = set()
        for product in products.products:
            row = table.put(code=product.code, name=product.name,
                            material_id=materials[product.material])
            self.session.flush()
            loaded.add(row.id)
            self._make_room_for_sequences(row.id, product, operations)
            for operation in product.operations:
                op_row = operations.put(
                    product_id=row.id, sequence=operation.sequence, code=operation.code,
                    name=operation.name, work_center_type=operation.work_center_type,
                    standard_seconds_per_unit=operation.standard_seconds_per_unit,
                    setup_seconds=operation.setup_seconds, setup_family=operation.setup_family,
                    output_material_id=(materials[operation.output_material]
                                        if operation.output_material else None),
                    required_certification_id=(
                        certifications[operation.required_certification]
                        if operation.required_certification else None),
                    document_id=(documents[operation.work_instruction]
                                 if operation.work_instruction else None))
                self.session.flush()
                for item in operation.bom:
                    bom.put(operation_id=op_row.id, material_id=materials[item.material],
                            quantity_per_unit=item.quantity_per_unit)
                for plan in operation.inspections:
                    plans.put(operation_id=op_row.id, characteristic=plan.characteristic,
                              nominal=plan.nominal, lower_spec=plan.lower_spec,
                              upper_spec=plan.upper_spec, unit=plan.unit,
                              sample_size=plan.sample_size)
        # Details follow the file: what it no longer lists under a loaded product goes,
        # children before their operations (_check_removals made sure nothing refers to them).
        in_loaded = {o.id for o in operations.rows.values() if o.product_id in loaded}
        bom.delete_unseen(lambda b: b.operation_id in in_loaded)
        plans.delete_unseen(lambda p: p.operation_id in in_loaded)
        self.session.flush()
        operations.delete_unseen(lambda o: o.product_id in loaded)
        self.session.flush()

    def _make_room_for_sequences(self, product_id: int, product: ProductDef,
                                 operations: KeyedRows) -> None:
        """Operations that move to another sequence number, and dropped ones in the way of a
        new one, step aside first: two operations that swap places would otherwise collide on
        the (product, sequence) key on the way."""
        wanted = {o.code: o.sequence for o in product.operations}
        sequences = set(wanted.values())
        moving = [row for row in operations.rows.values() if row.product_id == product_id
                  and (wanted.get(row.code, row.sequence) != row.sequence
                       or (row.code not in wanted and row.sequence in sequences))]
        for row in moving:
            row.sequence = -row.id  # never a real sequence: those are positive
        if moving:
            self.session.flush()
