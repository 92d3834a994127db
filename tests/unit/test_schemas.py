from pathlib import Path

from shared.schemas import check_schemas, render

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def test_checked_in_schemas_match_the_models() -> None:
    drifted = check_schemas(SCHEMAS)
    assert drifted == [], f"run `rag schemas` to regenerate: {drifted}"


def test_drift_is_detected(tmp_path: Path) -> None:
    for name, content in render().items():
        (tmp_path / name).write_text(content)
    (tmp_path / "ChatRequest.schema.json").write_text("{}\n")
    (tmp_path / "Retired.schema.json").write_text("{}\n")
    assert check_schemas(tmp_path) == ["ChatRequest.schema.json", "Retired.schema.json"]


def test_every_topic_has_a_message_in_the_asyncapi_document() -> None:
    import json

    doc = json.loads(render()["asyncapi.json"])
    addresses = {c["address"] for c in doc["channels"].values()}
    assert {
        "rag.ingest.requests",
        "rag.chat.requests",
        "rag.chat.replies",
        "rag.chat.cancel",
    } <= addresses
