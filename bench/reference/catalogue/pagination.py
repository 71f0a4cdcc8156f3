from rest_framework import pagination


class Pagination(pagination.PageNumberPagination):
    """DRF's page: {count, next, previous, results}, ?page= and ?page_size= (at most 100)."""

    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100
