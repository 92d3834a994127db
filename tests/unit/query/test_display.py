import pytest

from query.display import plain


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("within **30 calendar days** of the", "within 30 calendar days of the"),
        ("If *sort_keys* is true (default: `False`)", "If sort_keys is true (default: False)"),
        ("Pass `**kwargs` or *args; 2 * 3 = 6", "Pass **kwargs or *args; 2 * 3 = 6"),
        ("keep snake_case_names and __dunder__", "keep snake_case_names and dunder"),
        ("- **Hotels:** the cap is EUR 180", "Hotels: the cap is EUR 180"),
        ("3. Run `python -m json.tool --sort-keys`", "Run python -m json.tool --sort-keys"),
        ("See [the docs](https://x.example/a) and ![logo](l.png)", "See the docs and logo"),
        ("| Python | 3.11 |", "Python | 3.11"),
        ("```sh\nmake test\nmake lint\n```", "make test make lint"),
        ("## Meals and per diem", "Meals and per diem"),
        ("*Version 4.2, effective 1 March 2025.", "Version 4.2, effective 1 March 2025."),
        ("Owner: Finance (ops@x.example).*", "Owner: Finance (ops@x.example)."),
        ("a line\n  wrapped", "a line wrapped"),
    ],
)
def test_markup_goes_and_the_words_stay(text: str, shown: str) -> None:
    assert plain(text) == shown
