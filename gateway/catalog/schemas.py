"""Request and response bodies of the catalog and reviews endpoints."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from gateway.catalog.writes import MAX_FILES
from gateway.http.fields import answer, page_answer, sparse
from gateway.http.responses import Out, PaginationOut
from gateway.http.validation import Body

# At most 6 decimals: prices are also stored as integer millionths for sorting.
PRICE_PATTERN = r"^\d{1,9}(\.\d{1,6})?$"
# A listing's minPrice/maxPrice: a price, or nothing (an empty bound is no bound).
PRICE_BOUND_PATTERN = r"^(\d{1,9}(\.\d{1,6})?)?$"
MAX_STOCK = 1_000_000_000


def canonical_price(raw: str) -> str:
    """A positive decimal string with at least two decimals ("12.5" -> "12.50")."""
    value = Decimal(raw)
    if value <= 0:
        raise ValueError("must be greater than zero")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        value = value.quantize(Decimal("0.01"))
    return format(value, "f")


Price = Annotated[
    str,
    Field(pattern=PRICE_PATTERN, examples=["12.50"], description="Decimal string."),
    AfterValidator(canonical_price),
]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["USD"])]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Description = Annotated[str, Field(max_length=5000)]
Category = Annotated[str, Field(min_length=1, max_length=100)]
FileIds = Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]],
                    Field(max_length=MAX_FILES)]


class CreateProductBody(Body):
    """POST /v1/products."""

    name: Name
    description: Description = ""
    category: Category
    price: Price
    currency: Currency
    stock: int = Field(default=0, ge=0, le=MAX_STOCK, description="Initial stock.")
    file_ids: FileIds = Field(default_factory=list)


class UpdateProductBody(Body):
    """PATCH /v1/products/{id}: only the fields present change."""

    name: Name | None = None
    description: Description | None = None
    category: Category | None = None
    price: Price | None = None
    currency: Currency | None = None
    file_ids: FileIds | None = None

    @model_validator(mode="after")
    def _something(self) -> UpdateProductBody:
        if not self.model_fields_set:
            raise ValueError("send at least one field to change")
        return self


class ReviewBody(Body):
    """POST /v1/products/{id}/reviews."""

    rating: int = Field(ge=1, le=5)
    comment: str = Field(max_length=2000)


class ReviewOut(Out):
    """A review."""

    review_id: str
    product_id: str
    buyer_id: str
    rating: int
    comment: str
    created_at: str


class RatingOut(Out):
    """Average stars and how many reviews."""

    average: float
    count: int


class ProductOut(Out):
    """A product."""

    product_id: str
    seller_id: str
    name: str
    description: str
    category: str
    price: str
    currency: str
    stock: int
    status: str
    file_ids: list[str]
    rating: RatingOut
    created_at: str
    updated_at: str


class ProductView(ProductOut):
    """A product with its latest reviews (?include=reviews): one round trip for a page."""

    reviews: list[ReviewOut]


class ProductPage(Out):
    """A page of products."""

    data: list[ProductOut]
    pagination: PaginationOut


class ReviewPage(Out):
    """A page of reviews, newest first."""

    data: list[ReviewOut]
    pagination: PaginationOut


# ?fields= answers: any subset of the members (gateway.http.fields).
ProductAnswer = answer(ProductOut, sparse(ProductView))
ProductPageAnswer = page_answer(ProductPage, ProductOut)
