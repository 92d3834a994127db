from query.sentences import Unit, passage_units


def test_a_wrapped_line_is_not_a_sentence_end() -> None:
    text = (
        "Submit every report within **30 calendar\ndays** of the purchase. Late ones\nare rejected."
    )
    assert [u.text for u in passage_units(text)] == [
        "Submit every report within **30 calendar days** of the purchase.",
        "Late ones are rejected.",
    ]


def test_abbreviations_versions_and_options_do_not_end_sentences() -> None:
    text = (
        "Use a format, e.g. JSON, for logs. Python 3.11 is required, i.e. Not 3.10. "
        "Pass --format json. See Fig. 3 for more."
    )
    assert [u.text for u in passage_units(text)] == [
        "Use a format, e.g. JSON, for logs.",
        "Python 3.11 is required, i.e. Not 3.10.",
        "Pass --format json.",
        "See Fig. 3 for more.",
    ]


def test_blocks_are_units_of_their_own_and_know_their_heading() -> None:
    text = (
        "# Policy\n\nIntro text here.\n\n## Travel\n\n"
        "- **Flights:** economy. Business needs approval.\n"
        "| Hotel | EUR 180 |\n\n```\nmake book\n```\n"
    )
    assert passage_units(text) == [
        Unit("# Policy", "heading", None),
        Unit("Intro text here.", "sentence", "Policy"),
        Unit("## Travel", "heading", "Policy"),
        Unit("- **Flights:** economy. Business needs approval.", "item", "Travel"),
        Unit("| Hotel | EUR 180 |", "row", "Travel"),
        Unit("```\nmake book\n```", "code", "Travel"),
    ]
