from __future__ import annotations

import json
from pathlib import Path

from api.main import create_app

DOCUMENT = Path(__file__).parents[2] / "docs" / "openapi.json"


def test_docs_openapi_json_is_the_generated_document() -> None:
    """Regenerate with `payments openapi > docs/openapi.json` after changing the API."""
    assert json.loads(DOCUMENT.read_text()) == create_app(None).openapi()


def test_every_error_is_documented_as_problem_json() -> None:
    document = create_app(None).openapi()
    for item in document["paths"].values():
        for operation in item.values():
            for status, response in operation["responses"].items():
                if status[0] in "45":
                    assert list(response["content"]) == ["application/problem+json"]
