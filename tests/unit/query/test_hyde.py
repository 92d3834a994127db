import pytest

from query.hyde import hypothetical_passage
from query.prompts import hyde_messages
from shared.errors import Unavailable
from tests.support.chat import ScriptedChat

PASSAGE = (
    "To reset a VPN token, open the self-service portal, choose Security, then Reset "
    "token. The new token is active within five minutes."
)


async def test_returns_the_models_passage() -> None:
    model = ScriptedChat(f"\n  {PASSAGE}  \n")
    assert await hypothetical_passage("How do I reset my VPN token?", model) == PASSAGE
    [(messages, max_tokens)] = model.calls
    assert messages == hyde_messages("How do I reset my VPN token?")
    assert max_tokens == 200


async def test_max_tokens_is_passed_on() -> None:
    model = ScriptedChat(PASSAGE)
    await hypothetical_passage("q?", model, max_tokens=64)
    assert model.calls[0][1] == 64


async def test_a_failing_model_raises_unavailable_to_the_caller() -> None:
    with pytest.raises(Unavailable, match="down"):
        await hypothetical_passage("q?", ScriptedChat(Unavailable("down")))


async def test_an_empty_passage_is_a_failure() -> None:
    with pytest.raises(Unavailable, match="no HyDE passage"):
        await hypothetical_passage("q?", ScriptedChat("  \n"))
