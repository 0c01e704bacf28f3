"""The API's JSON parser: DRF's, except that deep nesting is a 400 naming the field, never a RecursionError."""

from __future__ import annotations

import codecs

from django.conf import settings
from rest_framework import exceptions, parsers

from coordination.jsonlimits import JSONNestingError, json_loads


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json_loads(codecs.getreader(encoding)(stream).read())
        except JSONNestingError as exc:
            raise exceptions.ValidationError({exc.field: [str(exc)]}) from exc
        except ValueError as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from exc
