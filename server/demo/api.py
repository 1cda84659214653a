"""The demo upstream: a tiny bookshelf API whose OpenAPI 3.1 description ships beside it.

Small on purpose, but it exercises every way an operation takes input — path, query (arrays and
a deepObject filter), header, cookie, JSON, form and multipart bodies — and answers with JSON
objects, a 201, a 204 and a 404, so every kind of tool toolkiln makes from a spec can be tried
offline. State lives in memory and starts from the same few books every run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["Book", "Shelf", "build_demo_api"]

MAX_COVER_BYTES = 2 * 1024 * 1024
_DEEP = re.compile(r"^filter\[([a-z_]+)\]$")


@dataclass
class Book:
    id: int
    title: str
    author: str
    year: int | None = None
    tags: list[str] = field(default_factory=list)
    reviews: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data["reviews"] = len(self.reviews)
        return data


class Shelf:
    """The API's whole state."""

    def __init__(self) -> None:
        self.books: dict[int, Book] = {}
        for title, author, year, tags in [
            ("The Pragmatic Programmer", "Andrew Hunt", 1999, ["programming", "craft"]),
            ("Structure and Interpretation of Computer Programs", "Harold Abelson", 1985, ["programming", "lisp"]),
            ("The Design of Everyday Things", "Don Norman", 1988, ["design"]),
            ("Designing Data-Intensive Applications", "Martin Kleppmann", 2017, ["databases", "distributed"]),
        ]:
            self.add(title, author, year, tags)

    def add(self, title: str, author: str, year: int | None, tags: list[str]) -> Book:
        book = Book(id=max(self.books, default=0) + 1, title=title, author=author, year=year, tags=tags)
        self.books[book.id] = book
        return book

    def find(
        self, *, text: str = "", tags: list[str] | None = None, author: str = "", year_from: int = 0
    ) -> list[Book]:
        found = []
        for book in self.books.values():
            if text and text.lower() not in book.title.lower():
                continue
            if tags and not set(tags) & set(book.tags):
                continue
            if author and author.lower() not in book.author.lower():
                continue
            if year_from and (book.year or 0) < year_from:
                continue
            found.append(book)
        return found


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def build_demo_api(shelf: Shelf | None = None) -> Starlette:
    """A fresh demo API (its own `Shelf` unless one is given)."""
    state = shelf or Shelf()

    def book_or_404(request: Request) -> Book | JSONResponse:
        book = state.books.get(int(request.path_params["book_id"]))
        return book if book is not None else _error(404, f"no book with id {request.path_params['book_id']}")

    async def list_books(request: Request) -> Response:
        query = request.query_params
        limit = max(1, min(50, _int(query.get("limit"), 10)))
        found = state.find(text=query.get("q", ""), tags=query.getlist("tag"))
        return JSONResponse(
            {
                "items": [book.summary() for book in found[:limit]],
                "total": len(found),
                "request_id": request.headers.get("x-request-id"),
            }
        )

    async def search_books(request: Request) -> Response:
        criteria = {}
        for key, value in request.query_params.multi_items():
            match = _DEEP.fullmatch(key)
            if match:
                criteria[match.group(1)] = value
        found = state.find(
            author=criteria.get("author", ""),
            tags=[criteria["tag"]] if "tag" in criteria else None,
            year_from=_int(criteria.get("year_from"), 0),
        )
        return JSONResponse({"items": [book.summary() for book in found], "total": len(found), "filter": criteria})

    async def create_book(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "the body must be JSON")
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("title"), str)
            or not isinstance(body.get("author"), str)
        ):
            return _error(400, "title and author are required strings")
        tags = [str(tag) for tag in body.get("tags", []) if isinstance(tag, str)]
        year = body.get("year") if isinstance(body.get("year"), int) else None
        book = state.add(body["title"], body["author"], year, tags)
        return JSONResponse(book.summary(), status_code=201)

    async def get_book(request: Request) -> Response:
        found = book_or_404(request)
        return found if isinstance(found, Response) else JSONResponse(found.summary())

    async def delete_book(request: Request) -> Response:
        found = book_or_404(request)
        if isinstance(found, Response):
            return found
        del state.books[found.id]
        return Response(status_code=204)

    async def add_review(request: Request) -> Response:
        found = book_or_404(request)
        if isinstance(found, Response):
            return found
        form = await request.form()
        rating = _int(str(form.get("rating", "")), 0)
        if not 1 <= rating <= 5:
            return _error(400, "rating must be 1 to 5")
        review = {"rating": rating, "comment": str(form.get("comment", ""))}
        found.reviews.append(review)
        return JSONResponse({"book_id": found.id, **review, "reviews": len(found.reviews)}, status_code=201)

    async def upload_cover(request: Request) -> Response:
        found = book_or_404(request)
        if isinstance(found, Response):
            return found
        async with request.form(max_files=1, max_fields=4) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                return _error(400, "a 'file' part is required")
            data = await upload.read(MAX_COVER_BYTES + 1)
            caption = form.get("caption")
        if len(data) > MAX_COVER_BYTES:
            return _error(413, "the cover is larger than 2 MiB")
        return JSONResponse(
            {
                "book_id": found.id,
                "bytes": len(data),
                "content_type": upload.content_type,
                "sha256": hashlib.sha256(data).hexdigest(),
                "caption": caption if isinstance(caption, str) else None,
            }
        )

    async def who_am_i(request: Request) -> Response:
        session = request.cookies.get("session")
        if not session:
            return _error(401, "send the 'session' cookie")
        return JSONResponse({"user": f"reader-{hashlib.sha256(session.encode()).hexdigest()[:8]}", "session": session})

    routes = [
        Route("/books", list_books, methods=["GET"]),
        Route("/books", create_book, methods=["POST"]),
        Route("/books/search", search_books, methods=["GET"]),
        Route("/books/{book_id:int}", get_book, methods=["GET"]),
        Route("/books/{book_id:int}", delete_book, methods=["DELETE"]),
        Route("/books/{book_id:int}/reviews", add_review, methods=["POST"]),
        Route("/books/{book_id:int}/cover", upload_cover, methods=["PUT"]),
        Route("/me", who_am_i, methods=["GET"]),
    ]
    return Starlette(routes=routes)
