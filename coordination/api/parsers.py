"""The API's JSON parser: DRF's, except that deep nesting is a 400 naming the field, never a RecursionError,
and a body over DATA_UPLOAD_MAX_MEMORY_SIZE is a 413 read no further than the limit."""

from __future__ import annotations

import codecs

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import exceptions, parsers

from coordination.jsonlimits import JSONNestingError, json_loads


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise RequestDataTooBig(f"request body over {limit} bytes")
        try:
            return json_loads(codecs.decode(raw, encoding))
        except JSONNestingError as exc:
            raise exceptions.ValidationError({exc.field: [str(exc)]}) from exc
        except ValueError as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from exc
