import gzip
import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from ingestion.extraction import extract_article
from ingestion.extraction_score import page_counts, percentile, score, shingles

PAGES = Path(__file__).parent / "pages"


def page(name: str) -> str:
    return (PAGES / name).read_text(encoding="utf-8")


def test_it_extracts_the_body_and_metadata_of_an_article():
    html = page("article_with_meta.html")

    article = extract_article(html, "https://coastal.example/skerryvore")

    assert article is not None
    assert article.title == "The Lighthouse Keepers of Skerryvore"
    assert article.author == "Morag Campbell"
    assert article.site == "Coastal Notes"
    assert article.published == "2021-03-14"
    assert article.language == "en"
    assert article.description.startswith("How three families kept")
    assert article.text.startswith("Skerryvore stands on a reef")
    assert article.text.rstrip().endswith("waited for the tide.")
    assert article.html_length == len(html)
    assert article.word_count == len(re.findall(r"\w+", article.text))


def test_it_keeps_the_headline_out_of_the_body():
    article = extract_article(page("article_with_meta.html"))

    assert article is not None
    assert "Lighthouse Keepers" not in article.text
    assert "Lighthouse Keepers" not in article.markdown


def test_it_separates_paragraphs_with_blank_lines_and_keeps_headings_in_markdown():
    article = extract_article(page("article_with_meta.html"))

    assert article is not None
    paragraphs = article.text.split("\n\n")
    assert len(paragraphs) == 5
    assert all(paragraph.strip() == paragraph and paragraph for paragraph in paragraphs)
    assert "## Life on the rock" in article.markdown


def test_it_leaves_navigation_sidebars_and_footers_out():
    article = extract_article(page("boilerplate.html"))

    assert article is not None
    assert article.text.startswith("Baking bread two thousand metres")
    for boilerplate in (
        "cookies",
        "Shop our kitchen tools",
        "Popular posts",
        "curries",
        "Subscribe",
        "newsletter",
        "Privacy policy",
        "Contact us",
    ):
        assert boilerplate not in article.text
        assert boilerplate not in article.markdown


def test_it_reads_a_page_decoded_from_a_legacy_charset():
    html = (PAGES / "cp1252_article.html").read_bytes().decode("cp1252")

    article = extract_article(html)

    assert article is not None
    assert article.language == "fr"
    assert "l'été dans des pâturages" in article.text
    assert "À Roquefort-sur-Soulzon" in article.text
    assert "pénicillium" in article.text


def test_it_keeps_an_embedded_social_post_quoted_in_the_article():
    article = extract_article(page("embedded_post.html"))

    assert article is not None
    assert "The ferry stays!" in article.text
    assert article.text.rstrip().endswith("through the coming winters.")


def test_it_finds_no_article_in_an_empty_page():
    assert extract_article(page("empty.html")) is None
    assert extract_article("") is None
    assert extract_article("   ") is None


def test_it_is_deterministic():
    html = page("boilerplate.html")

    assert extract_article(html) == extract_article(html)


def test_it_cuts_text_into_word_four_grams():
    assert shingles("One two, three four five!") == {
        ("One", "two", "three", "four"): 1,
        ("two", "three", "four", "five"): 1,
    }
    assert shingles("just three words") == {("just", "three", "words"): 1}
    assert shingles("") == {}
    assert shingles(None) == {}


def test_it_counts_a_page_as_shares_of_its_shingles():
    # truth: abcd, bcde; prediction: abcd, bcdx -> one shared, one extra, one missed
    assert page_counts("a b c d e", "a b c d x") == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert page_counts("a b c d e", "a b c d e") == (1.0, 0.0, 0.0)
    assert page_counts("", "") == (0.0, 0.0, 0.0)


def test_it_averages_precision_and_recall_over_pages():
    truth = {"half": "a b c d e", "all": "p q r s", "none": "w x y z"}
    predictions = {"half": "a b c d", "all": "p q r s", "none": ""}

    result = score(truth, predictions)

    # precision over the pages that predicted something: (1 + 1) / 2
    # recall over all three: (1/2 + 1 + 0) / 3
    assert result.precision == pytest.approx(1.0)
    assert result.recall == pytest.approx(0.5)
    assert result.f1 == pytest.approx(2 / 3)


def test_it_refuses_to_score_a_partial_run():
    with pytest.raises(KeyError, match="lack 1 pages"):
        score({"a": "one two three four", "b": "five"}, {"a": "one two three four"})


def test_it_takes_the_nearest_rank_percentile():
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.95) == 5.0
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 0.5) == 3.0
    assert percentile([], 0.95) == 0.0


def build_dataset(folder: Path, *, with_truth: bool = True) -> Path:
    (folder / "html").mkdir(parents=True)
    bodies = {}
    for key, name in (("lighthouse", "article_with_meta.html"), ("sourdough", "boilerplate.html")):
        (folder / "html" / f"{key}.html.gz").write_bytes(gzip.compress(page(name).encode()))
        article = extract_article(page(name))
        assert article is not None
        bodies[key] = {"articleBody": article.text, "url": f"https://example.com/{key}"}
    # one page's truth misses its last paragraph, so the score is below 1
    bodies["sourdough"]["articleBody"] = bodies["sourdough"]["articleBody"].rsplit("\n\n", 1)[0]
    if with_truth:
        (folder / "ground-truth.json").write_text(json.dumps(bodies), encoding="utf-8")
    return folder


def test_it_benchmarks_a_dataset_and_writes_the_predictions(tmp_path):
    dataset = build_dataset(tmp_path / "dataset")
    out = tmp_path / "predictions.json"
    stdout = StringIO()

    call_command("bench_extraction", "--dataset", str(dataset), "--out", str(out), stdout=stdout)

    predictions = json.loads(out.read_text(encoding="utf-8"))
    assert sorted(predictions) == ["lighthouse", "sourdough"]
    assert predictions["lighthouse"]["articleBody"].startswith("Skerryvore stands on a reef")
    match = re.search(
        r"^f1=(\d\.\d{3}) precision=(\d\.\d{3}) recall=(\d\.\d{3})$",
        stdout.getvalue(),
        re.MULTILINE,
    )
    assert match is not None
    truth = json.loads((dataset / "ground-truth.json").read_text(encoding="utf-8"))
    expected = score(
        {key: page["articleBody"] for key, page in truth.items()},
        {key: page["articleBody"] for key, page in predictions.items()},
    )
    assert match.groups() == tuple(f"{value:.3f}" for value in expected)
    assert expected.recall == 1.0
    assert expected.precision < 1.0
    assert re.search(r"pages=2 ms/page avg=\d+\.\d p95=\d+\.\d", stdout.getvalue())


def test_it_benchmarks_without_ground_truth_or_output_file(tmp_path):
    dataset = build_dataset(tmp_path / "dataset", with_truth=False)
    stdout = StringIO()

    call_command("bench_extraction", "--dataset", str(dataset), stdout=stdout)

    assert "f1=" not in stdout.getvalue()
    assert "pages=2" in stdout.getvalue()
    assert list(tmp_path.iterdir()) == [dataset]


def test_it_fails_when_the_dataset_folder_is_missing(tmp_path):
    with pytest.raises(CommandError, match="no dataset folder"):
        call_command("bench_extraction", "--dataset", str(tmp_path / "nowhere"))


def test_it_fails_when_the_dataset_has_no_pages(tmp_path):
    with pytest.raises(CommandError, match="no html"):
        call_command("bench_extraction", "--dataset", str(tmp_path))
