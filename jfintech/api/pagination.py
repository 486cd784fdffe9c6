from rest_framework.pagination import CursorPagination


class CreatedCursorPagination(CursorPagination):
    """Cursor pagination: stable under inserts, no COUNT(*) over big tables."""

    ordering = "-id"
    page_size_query_param = "page_size"
    max_page_size = 500


def get_paginated_response(*, queryset, serializer_class, request, view, pagination_class=None):
    """Paginate a selector's queryset in a plain APIView (HackSoft styleguide helper)."""
    paginator = (pagination_class or CreatedCursorPagination)()
    page = paginator.paginate_queryset(queryset, request, view=view)
    return paginator.get_paginated_response(
        serializer_class(page, many=True, context={"request": request}).data
    )
