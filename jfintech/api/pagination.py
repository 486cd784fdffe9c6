from rest_framework.pagination import CursorPagination


class CreatedCursorPagination(CursorPagination):
    """Cursor pagination: stable under inserts, no COUNT(*) over big tables."""

    ordering = "-id"
    page_size_query_param = "page_size"
    max_page_size = 500
