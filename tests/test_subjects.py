"""Named subjects of a question and their coverage: pure logic on hand-built chunks."""

from kb.answer.subjects import is_about, named_subjects, subject_coverage, subject_queries
from kb.store import Hit


def hit(text: str, title: str, score: float = 0.85) -> Hit:
    return Hit(chunk_id=title, text=text, metadata={"title": title, "source": title}, score=score)


NORTHWIND = hit(
    "Northwind Trading Ltd. opened a warehouse in Leeds in March 2022. "
    "In August 2022, the company refinanced its loans.",
    "Northwind Trading Ltd.",
)
BLUEFIN = hit(
    "Bluefin Analytics appointed a new CFO in August 2022. The CFO came from a bank.",
    "Bluefin Analytics",
)


def test_names_are_runs_of_capitalised_words():
    question = "Compare the revenue of Northwind Trading Ltd. in 2021 and Bluefin Analytics in 2022"
    assert named_subjects(question) == ["Northwind Trading Ltd", "Bluefin Analytics"]


def test_question_words_months_and_possessives_are_not_names():
    assert named_subjects("When did Northwind's CFO resign in August 2022?") == [
        "Northwind",
        "CFO",
    ]
    assert named_subjects("What is the notice period for managers?") == []
    assert named_subjects("年假有多少天？") == []


def test_a_name_does_not_start_with_an_honorific():
    # A chunk naming Jan Novak need not say "Mr." to be about him.
    assert named_subjects("What did Mr. Jan Novak present in 2021?") == ["Jan Novak"]
    assert named_subjects("When did Dr Ana Silva join Bluefin Analytics?") == [
        "Ana Silva",
        "Bluefin Analytics",
    ]


def test_joiners_stay_inside_a_name():
    assert named_subjects("Who audits the Bank of Leeds?") == ["Bank of Leeds"]


def test_commas_separate_names_and_stopword_names_are_dropped():
    assert named_subjects("When did Northwind, Bluefin and Harbor open offices in the US?") == [
        "Northwind",
        "Bluefin",
        "Harbor",
    ]


def test_a_chunk_names_a_subject_without_its_accents_or_with_another_ending():
    chunk = hit("José Müller joined the board of the North America unit in 2021.", "Board")
    assert is_about("Jose Muller", chunk)
    assert is_about("North American", chunk)
    assert not is_about("Northwind Trading", chunk)
    # Another ending is another name, not a form of the same one.
    assert not is_about("Kestrel", hit("Kestrex reported record revenue.", "Kestrex"))


def test_each_subject_gets_a_query_without_the_others():
    subjects = ["Northwind Trading Ltd", "Bluefin Analytics"]
    queries = subject_queries("Compare Northwind Trading Ltd and Bluefin Analytics", subjects)
    assert queries == ["Compare Northwind Trading Ltd and", "Compare and Bluefin Analytics"]


def test_a_chunk_is_about_a_subject_its_title_or_text_names():
    assert is_about("Northwind Trading Ltd", NORTHWIND)
    assert not is_about("Northwind Trading Ltd", BLUEFIN)


def test_coverage_is_high_when_a_passage_about_the_subject_answers():
    question = "When did Northwind Trading Ltd. open a warehouse in Leeds?"
    covered = subject_coverage(question, named_subjects(question), [NORTHWIND, BLUEFIN])
    assert covered is not None and covered > 0.8


def test_the_answer_for_another_subject_does_not_count():
    # Northwind's report mentions August 2022 and Bluefin's new CFO, but no passage about
    # Northwind says anything about a CFO: the question is not answered by these sources.
    question = "Who was appointed CFO of Northwind Trading Ltd. in August 2022?"
    subjects = named_subjects(question)
    covered = subject_coverage(question, subjects, [NORTHWIND, BLUEFIN])
    assert covered is not None and covered < 0.5
    answered = hit("Northwind Trading Ltd. appointed J. Doe as CFO in August 2022.", "Northwind")
    better = subject_coverage(question, subjects, [NORTHWIND, BLUEFIN, answered])
    assert better is not None and better > 0.9


def test_the_least_covered_subject_decides():
    question = "Compare the warehouse cities of Northwind Trading Ltd and Bluefin Analytics."
    covered = subject_coverage(question, named_subjects(question), [NORTHWIND, BLUEFIN])
    alone = subject_coverage(
        "In which city is the warehouse of Northwind Trading Ltd?",
        ["Northwind Trading Ltd"],
        [NORTHWIND, BLUEFIN],
    )
    assert covered is not None and alone is not None and covered < alone


def test_no_subject_means_no_opinion():
    assert subject_coverage("How many days of leave?", [], [NORTHWIND]) is None


def test_a_capitalised_first_word_alone_is_not_a_name():
    assert named_subjects("Invoices sent after the cut-off are paid when?") == []
    assert named_subjects("DataCorp listed its shares when?") == ["DataCorp"]


def test_too_little_asked_beyond_the_subject_means_no_opinion():
    assert (
        subject_coverage(
            "Where is Northwind Trading Ltd. located?", ["Northwind Trading Ltd"], [NORTHWIND]
        )
        is None
    )
