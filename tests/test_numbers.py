"""English number reading (pipeline.numbers): a table of cases of every kind, and properties over generated text."""

import re
import string

import inflect
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.numbers import normalize_numbers
from pipeline.text import normalize, phonemize

CASES = [
    # money: units, cents/pence, singulars, scale words and suffixes, signs, codes
    ("$0.5", "fifty cents"),
    ("$0.05", "five cents"),
    ("$.50", "fifty cents"),
    ("$1.50", "one dollar, fifty cents"),
    ("$1.01", "one dollar, one cent"),
    ("$12.50", "twelve dollars, fifty cents"),
    ("$5.30", "five dollars, thirty cents"),
    ("$12.00", "twelve dollars"),
    ("$1,234.56", "one thousand, two hundred thirty-four dollars, fifty-six cents"),
    ("$1999", "one thousand, nine hundred ninety-nine dollars"),
    ("$1.234", "one point two three four dollars"),
    ("$5.3 billion", "five point three billion dollars"),
    ("$5.3 Billion", "five point three billion dollars"),
    ("$1 million", "one million dollars"),
    ("$5k", "five thousand dollars"),
    ("$2M", "two million dollars"),
    ("$1bn", "one billion dollars"),
    ("$1.5bn", "one point five billion dollars"),
    ("$3T", "three trillion dollars"),
    ("-$5", "minus five dollars"),
    ("$-5", "minus five dollars"),
    ("€2", "two euros"),
    ("€1", "one euro"),
    ("€2.50", "two euros, fifty cents"),
    ("5 €", "five euros"),
    ("2,50€", "two euros, fifty cents"),
    ("€1,234", "one thousand, two hundred thirty-four euros"),
    ("£3.20", "three pounds, twenty pence"),
    ("£1.01", "one pound, one penny"),
    ("£0.50", "fifty pence"),
    ("£5", "five pounds"),
    ("¥500", "five hundred yen"),
    ("¥1", "one yen"),
    ("¥5.3 billion", "five point three billion yen"),
    ("50¢", "fifty cents"),
    ("USD 5", "five dollars"),
    ("5 EUR", "five euros"),
    ("US$10", "ten dollars"),
    # signs
    ("-3", "minus three"),
    ("−3", "minus three"),
    ("+5", "plus five"),
    ("x-3", "x-three"),
    ("COVID-19", "COVID-nineteen"),
    # percent, per mille, degrees
    ("50%", "fifty percent"),
    ("3.5%", "three point five percent"),
    ("-2%", "minus two percent"),
    ("100 %", "one hundred percent"),
    ("5‰", "five per mille"),
    ("25°C", "twenty-five degrees Celsius"),
    ("-5°F", "minus five degrees Fahrenheit"),
    ("1°", "one degree"),
    # ordinals
    ("1st", "first"),
    ("2nd", "second"),
    ("3rd", "third"),
    ("11th", "eleventh"),
    ("22nd", "twenty-second"),
    ("103rd", "one hundred and third"),
    ("1,000th", "one thousandth"),
    # decimals
    ("3.14", "three point one four"),
    (".5", "point five"),
    ("0.05", "zero point zero five"),
    ("-0.5", "minus zero point five"),
    ("1,234.5", "one thousand, two hundred thirty-four point five"),
    ("2.5.1", "two point five point one"),
    ("1.234.567", "one million, two hundred thirty-four thousand, five hundred sixty-seven"),
    # times
    ("10:30", "ten thirty"),
    ("9:05 am", "nine oh five A M"),
    ("9:05 a.m. Then", "nine oh five A M. Then"),
    ("12:00 PM", "twelve P M"),
    ("10:00", "ten o'clock"),
    ("14:00", "fourteen hundred"),
    ("23:59", "twenty-three fifty-nine"),
    ("10:30:15", "ten thirty and fifteen seconds"),
    ("9pm", "nine P M"),
    ("7 am", "seven A M"),
    # years, decades, dates
    ("1999", "nineteen ninety-nine"),
    ("2024", "twenty twenty-four"),
    ("1905", "nineteen oh five"),
    ("2005", "two thousand five"),
    ("2000", "two thousand"),
    ("2100", "twenty-one hundred"),
    ("1066", "ten sixty-six"),
    ("1990s", "nineteen nineties"),
    ("1900s", "nineteen hundreds"),
    ("2000s", "two thousands"),
    ("'90s", "nineties"),
    ("’80s", "eighties"),
    ("the 50s", "the fifties"),
    ("2024-01-15", "January fifteenth, twenty twenty-four"),
    # phone-like digit runs
    ("987-654-3210", "nine eight seven, six five four, three two one zero"),
    ("987.654.3210", "nine eight seven, six five four, three two one zero"),
    ("(555) 123-4567", "five five five, one two three, four five six seven"),
    ("555 123 4567", "five five five, one two three, four five six seven"),
    ("+1 555 123 4567", "plus one, five five five, one two three, four five six seven"),
    ("+44 20 7946 0958", "plus four four, two zero, seven nine four six, zero nine five eight"),
    ("1-800-555-0199", "one, eight zero zero, five five five, zero one nine nine"),
    ("555-1234", "five five five, one two three four"),
    ("007", "zero zero seven"),
    # a plain digit run is a number, as in the reference
    (
        "Call 987654321 now.",
        "Call nine hundred eighty-seven million, six hundred fifty-four thousand, three hundred twenty-one now.",
    ),
    # ranges and fractions
    ("1-5", "one to five"),
    ("10–20", "ten to twenty"),
    ("500-1000", "five hundred to one thousand"),
    ("10-20%", "ten to twenty percent"),
    ("1990-1995", "nineteen ninety to nineteen ninety-five"),
    ("1/2", "one half"),
    ("3/4", "three quarters"),
    ("2/3", "two thirds"),
    ("5/8", "five eighths"),
    ("1/100", "one hundredth"),
    ("3/100", "three hundredths"),
    ("2 1/2 cups", "two and one half cups"),
    ("½", "one half"),
    ("1½", "one and one half"),
    ("24/7", "twenty-four/seven"),
    ("12/25/2024", "twelve/twenty-five/twenty twenty-four"),
    # thousands separators and plain numbers
    ("1,000,000", "one million"),
    ("1,234", "one thousand, two hundred thirty-four"),
    ("2,000 apples", "two thousand apples"),
    ("1,2,3", "one,two,three"),
    ("103", "one hundred three"),
    ("1000", "one thousand"),
    ("3000", "three thousand"),
    ("0", "zero"),
    ("#1", "number one"),
    ("5kg", "five kg"),
    ("MP3", "MP three"),
]


@pytest.mark.parametrize(("raw", "expected"), CASES, ids=[raw for raw, _ in CASES])
def test_english_number_reading(raw, expected):
    assert normalize(raw, "en-us") == expected


def test_the_table_covers_every_kind():
    assert len(CASES) >= 50


@pytest.mark.parametrize("language", ["de", "fr-fr", "es", "cmn"])
def test_every_non_japanese_language_gets_the_english_reading(language):
    assert normalize("$0.5 and 3.5%", language) == "fifty cents and three point five percent"


def test_spelled_percent_reads_like_the_symbol():
    """The reference leaves "%" to espeak-ng, which says "percent": spelling it out changes no phoneme."""
    assert phonemize("3.5% more", "en-us") == phonemize("three point five% more", "en-us")


# --- properties --------------------------------------------------------------------------------

_ORACLE = inflect.engine()  # the test's own engine, single-threaded: an independent oracle


def _words(number: int) -> str:
    return _ORACLE.number_to_words(number, andword="")


_digits = st.integers(0, 10**12).map(str)
_grouped = st.integers(1000, 10**12).map(lambda n: f"{n:,}")
_decimal = st.tuples(st.integers(0, 10**6), st.integers(0, 10**4)).map(lambda p: f"{p[0]}.{p[1]}")
_money = st.tuples(
    st.sampled_from(["$", "€", "£", "¥", "-$", "US$", "USD "]),
    st.one_of(_digits, _grouped, _decimal),
    st.sampled_from(["", "k", "M", "bn", " million", " billion"]),
).map("".join)
_pieces = st.one_of(
    _digits,
    _grouped,
    _decimal,
    _money,
    st.builds(lambda n, s: f"{n}{s}", st.integers(0, 10**5), st.sampled_from(["st", "nd", "rd", "th", "%", "°C", "s"])),
    st.builds(lambda h, m: f"{h}:{m:02d}", st.integers(0, 24), st.integers(0, 59)),
    st.builds(
        lambda a, b, c: f"{a:03d}-{b:03d}-{c:04d}", st.integers(0, 999), st.integers(0, 999), st.integers(0, 9999)
    ),
    st.builds(lambda a, b: f"{a}/{b}", st.integers(0, 200), st.integers(0, 200)),
    st.builds(lambda a, b: f"{a}-{b}", st.integers(0, 3000), st.integers(0, 3000)),
    st.sampled_from(["Call", "now", "the", "apples", "A", "x", "MP", "am", "pm", ",", ".", "-", "+", "(", ")", "'"]),
)
number_text = st.lists(_pieces, min_size=1, max_size=8).flatmap(
    lambda pieces: st.lists(st.sampled_from(["", " ", " ", ", "]), min_size=len(pieces), max_size=len(pieces)).map(
        lambda gaps: "".join(g + p for g, p in zip(gaps, pieces, strict=True)).strip() or "0"
    )
)


@settings(max_examples=300, deadline=None)
@given(number_text)
def test_no_ascii_digit_survives(raw):
    assert not re.search(r"[0-9]", normalize(raw, "en-us"))


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=string.ascii_letters + string.digits + " .,:;!?-+$€£¥%°'/()#½", min_size=1, max_size=60))
def test_no_ascii_digit_survives_arbitrary_mixes(raw):
    if raw.strip(" .,:;!?-'/()"):
        assert not re.search(r"[0-9]", normalize_numbers(raw))


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(
        [
            ("$", "dollar", "dollars", "cent", "cents"),
            ("€", "euro", "euros", "cent", "cents"),
            ("£", "pound", "pounds", "penny", "pence"),
        ]
    ),
    st.integers(0, 10**9),
    st.integers(0, 99),
)
def test_money_reads_the_cents_as_their_two_digit_value(currency, units, cents):
    symbol, unit, unit_plural, subunit, subunit_plural = currency
    spoken = normalize(f"{symbol}{units}.{cents:02d}", "en-us")
    if cents:
        assert spoken.endswith(f"{_words(cents)} {subunit if cents == 1 else subunit_plural}")
    if units or not cents:
        assert spoken.startswith(f"{_words(units)} {unit if units == 1 else unit_plural}")
    else:
        assert unit_plural not in spoken
    # one decimal is tenths of the unit: $D.C means C*10 cents
    if cents % 10 == 0 and cents:
        assert normalize(f"{symbol}{units}.{cents // 10}", "en-us") == spoken


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10**6), st.integers(1, 99), st.sampled_from(["thousand", "million", "billion", "trillion"]))
def test_scale_words_come_before_the_unit(units, tenths, scale):
    spoken = normalize(f"$ {units}.{tenths} {scale}".replace("$ ", "$"), "en-us")
    digits = " ".join(_words(int(digit)) for digit in str(tenths))
    assert spoken == f"{_words(units)} point {digits} {scale} dollars"


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10**9), st.text(alphabet=string.digits, min_size=1, max_size=6))
def test_decimals_read_each_digit_after_the_point(whole, fraction):
    spoken = normalize(f"{whole}.{fraction}", "en-us")
    assert spoken == f"{_words(whole)} point {' '.join(_words(int(d)) for d in fraction)}"


@settings(max_examples=100, deadline=None)
@given(st.integers(200, 999), st.integers(0, 999), st.integers(0, 9999), st.sampled_from(["-", "."]))
def test_phone_numbers_read_digit_by_digit(area, exchange, line, separator):
    raw = f"{area}{separator}{exchange:03d}{separator}{line:04d}"
    spoken = normalize(raw, "en-us")
    groups = [" ".join(_words(int(d)) for d in group) for group in raw.split(separator)]
    assert spoken == ", ".join(groups)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10**6), st.sampled_from(["", "-"]))
def test_percentages(number, sign):
    expected = f"{'minus ' if sign else ''}{_words(number)} percent"
    assert normalize(f"{sign}{number}%", "en-us") == expected


@settings(max_examples=200, deadline=None)
@given(number_text)
def test_normalize_is_deterministic_and_idempotent(raw):
    once = normalize(raw, "en-us")
    assert normalize(raw, "en-us") == once
    assert normalize_numbers(once) == once
    assert normalize(once, "en-us") == once
