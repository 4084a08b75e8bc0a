"""Request body parsers for the REST API.

`JSONParser` is DRF's, except that
- a document nested too deeply for Python's decoder (e.g. 50 000 `[`) is a 400 `parse_error`
  in the usual error shape instead of a RecursionError (500);
- a JSON number with a fraction or exponent becomes a `JSONFloat`: a float that remembers the
  literal it was written as, so amount fields can refuse `1e2` (zenzefi.amounts).
"""

from __future__ import annotations

import codecs

from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils import json


class JSONFloat(float):
    """A float parsed from JSON, with its literal text (`literal`)."""

    literal: str = ""


def _parse_float(text: str) -> JSONFloat:
    value = JSONFloat(text)
    value.literal = text
    return value


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = parsers.get_encoding(parser_context or {})
        try:
            decoded_stream = codecs.getreader(encoding)(stream)
            parse_constant = json.strict_constant if self.strict else None
            return json.load(decoded_stream, parse_constant=parse_constant, parse_float=_parse_float)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        except RecursionError:
            raise ParseError("JSON parse error - the document is nested too deeply.") from None
