import pytest

from query.llm.base import Message
from query.memory import (
    looks_dependent,
    offline_standalone,
    recent_history,
    standalone_question,
)
from shared.errors import Unavailable
from tests.support.chat import ScriptedChat

LEAVE = [
    Message("user", "How many days of paid leave do employees get?"),
    Message("assistant", "Employees get 25 days of paid leave per year [1]."),
]


@pytest.mark.parametrize(
    "question",
    [
        "And for contractors?",
        "what about part-time staff?",
        "How about interns in Berlin next year?",
        "Can it be carried over to next year?",
        "Who approves that request for me?",
        "Do they get paid for public holidays?",
        "Is there a limit on the number of days?",
        "What's its maximum carry-over?",
        "Why?",
        "And Berlin?",
    ],
)
def test_follow_ups_that_lean_on_the_conversation(question: str) -> None:
    assert looks_dependent(question)
    assert offline_standalone(question, LEAVE) == f"{LEAVE[0].content} {question}"


@pytest.mark.parametrize(
    "question",
    [
        "How do I submit travel expenses for a conference?",
        "What is the password policy for laptops?",
        "Which office has free parking for visitors?",
    ],
)
def test_standalone_questions_are_left_alone(question: str) -> None:
    assert not looks_dependent(question)
    assert offline_standalone(question, LEAVE) == question


def test_chained_follow_ups_reach_back_to_the_topic() -> None:
    history = [
        Message("user", "What is the parental leave policy?"),
        Message("assistant", "Parents get 16 weeks [1]."),
        Message("user", "Is it paid?"),
        Message("assistant", "Yes, fully [1]."),
    ]
    assert (
        offline_standalone("And for fathers?", history)
        == "What is the parental leave policy? Is it paid? And for fathers?"
    )


async def test_first_question_is_returned_as_is_without_a_model_call() -> None:
    model = ScriptedChat("should not be used")
    assert await standalone_question("And for contractors?", [], model) == "And for contractors?"
    assert model.calls == []


async def test_offline_rule_without_a_model() -> None:
    rewritten = await standalone_question("And for contractors?", LEAVE, None)
    assert rewritten == "How many days of paid leave do employees get? And for contractors?"


async def test_the_model_rewrites_with_the_conversation() -> None:
    model = ScriptedChat("How many days of paid leave do contractors get?\n")
    rewritten = await standalone_question("And for contractors?", LEAVE, model)
    assert rewritten == "How many days of paid leave do contractors get?"
    [(messages, _)] = model.calls
    prompt = messages[-1].content
    assert "User: How many days of paid leave do employees get?" in prompt
    assert "Assistant: Employees get 25 days of paid leave per year [1]." in prompt
    assert "Follow-up question: And for contractors?" in prompt


@pytest.mark.parametrize(
    "reply",
    [
        'Standalone question: "How many days of paid leave do contractors get?"',
        "  How many days of paid leave do contractors get?  \n\n(I resolved 'for').",
    ],
)
async def test_preambles_quotes_and_notes_are_removed(reply: str) -> None:
    rewritten = await standalone_question("And for contractors?", LEAVE, ScriptedChat(reply))
    assert rewritten == "How many days of paid leave do contractors get?"


@pytest.mark.parametrize(
    "reply",
    [
        Unavailable("chat model down"),
        "",
        "   \n ",
        "Contractors are not employees, so " + "the policy is different. " * 40,
    ],
)
async def test_a_failing_or_rambling_model_falls_back_to_the_offline_rule(
    reply: str | Exception,
) -> None:
    rewritten = await standalone_question("And for contractors?", LEAVE, ScriptedChat(reply))
    assert rewritten == "How many days of paid leave do employees get? And for contractors?"


async def test_other_errors_are_not_hidden() -> None:
    with pytest.raises(ValueError, match="bug"):
        await standalone_question("And then?", LEAVE, ScriptedChat(ValueError("bug")))


async def test_only_the_last_turns_reach_the_model() -> None:
    history = []
    for n in range(6):
        history += [Message("user", f"Question {n}?"), Message("assistant", f"Answer {n}.")]
    model = ScriptedChat("Question 5 again?")
    await standalone_question("And that?", history, model, max_turns=2)
    prompt = model.calls[0][0][-1].content
    assert "Question 3?" not in prompt
    assert "User: Question 4?" in prompt
    assert "Assistant: Answer 5." in prompt


def test_assistant_text_is_capped_most_recent_first() -> None:
    history = [
        Message("user", "First?"),
        Message("assistant", "old " * 500),
        Message("user", "Second?"),
        Message("assistant", "new " * 400),
    ]
    recent = recent_history(history, max_turns=3, max_assistant_chars=2000)
    assistant = [m.content for m in recent if m.role == "assistant"]
    assert assistant[1] == ("new " * 400).strip()
    assert assistant[0].startswith("old old")
    assert assistant[0].endswith(" …")
    assert sum(len(a) for a in assistant) <= 2000 + len(" …")
    assert [m.role for m in recent] == ["user", "assistant", "user", "assistant"]


def test_when_the_budget_is_spent_older_answers_are_left_out() -> None:
    history = [
        Message("user", "First?"),
        Message("assistant", "old answer"),
        Message("user", "Second?"),
        Message("assistant", "x" * 3000),
    ]
    recent = recent_history(history, max_turns=3, max_assistant_chars=2000)
    assert [m.content for m in recent if m.role == "user"] == ["First?", "Second?"]
    assert [len(m.content) for m in recent if m.role == "assistant"] == [2000 + len(" …")]
