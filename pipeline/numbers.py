"""English number reading: spell out the digits in text so that espeak-ng reads them as a person would.

The reference Zonos front end (`zonos/conditioning.py`, `normalize_numbers`, itself keithito/tacotron's
`text/numbers.py`) spells numbers with inflect for every language but Japanese; so does this module,
keeping the reference's readings where they are right (the model was trained on them) and fixing the
kinds of input it misreads. `normalize_numbers` applies these rules, each to the digits the rules
before it left, and no ASCII digit survives:

1. Phone numbers are read digit by digit, group by group ("987-654-3210" -> "nine eight seven, six
   five four, three two one zero"): "+" and 7 or more digits in groups ("+1 555 123 4567"), North
   American forms ("(555) 123-4567", "1-800-555-0199", "555.123.4567", "555 123 4567": 3-3-4
   digits with one kind of separator), and "555-1234" (but a pair
   of round numbers such as "500-1000" is a range). [ours; the reference reads the groups as numbers]
2. ISO dates: "2024-01-15" -> "January fifteenth, twenty twenty-four". [ours]
3. Times: "10:30" -> "ten thirty", "9:05 am" -> "nine oh five A M", "9pm" -> "nine P M"; a full
   hour is "ten o'clock" on the 12-hour clock and "fourteen hundred" on the 24-hour one ("14:00",
   "0:00"); seconds are added as "and N seconds". [ours]
4. Money, with the symbol before or after the amount ($ US$ € £ ¥, ¢, or USD EUR GBP JPY):
   "$1.50" -> "one dollar, fifty cents", "$0.5" -> "fifty cents" (one decimal is tenths), "£3.20" ->
   "three pounds, twenty pence", "€2" -> "two euros", "¥500" -> "five hundred yen", "-$5" -> "minus
   five dollars"; a scale word or suffix comes before the unit: "$5.3 billion" / "$5.3bn" -> "five
   point three billion dollars", "$5k" -> "five thousand dollars", "$2M" -> "two million dollars".
   More than two decimals are read as a decimal ("$1.234" -> "one point two three four dollars");
   a comma before exactly two digits is a decimal comma ("2,50 €" -> "two euros, fifty cents").
   [reference: "$" and "£" only, no scale words, "$0.5" -> "five cents", "£1" -> "one pounds"]
5. Ranges: "1-5" and "1 – 5" -> "one to five", "10-20%" -> "ten to twenty percent". [ours]
6. Percent, per mille, degrees: "3.5%" -> "three point five percent", "25°C" -> "twenty-five degrees
   Celsius". [ours; the reference leaves "%" to espeak, which says "percent" too]
7. Decades: "1990s" -> "nineteen nineties", "'90s" and "90s" -> "nineties". [ours]
8. Ordinals: "1st" -> "first", "103rd" -> "one hundred and third" (inflect's reading, with "and",
   as in the reference), "1,000th" -> "one thousandth".
9. Fractions: "1/2" -> "one half", "3/4" -> "three quarters", "2 5/8" -> "two and five eighths",
   "½" -> "one half" (a proper fraction with denominator 2-10, 12, 16, 32, 64 or 100; other
   "a/b" keep the slash between two numbers, as in dates). [ours]
10. Dotted chains: "2.5.1" -> "two point five point one", but "1.234.567" (3-digit groups after
    the first) is one number with dots as thousands separators. [ours]
11. "#1" -> "number one". [ours]
12. Other numbers: a leading sign is read ("-3" -> "minus three", "+5" -> "plus five"); decimals
    read the digits after the point one by one ("3.14" -> "three point one four", ".5" -> "point
    five", "0.05" -> "zero point zero five"); thousands separators are honoured only in valid
    3-digit groups ("1,234" is one number, "1,2" two); an unsigned plain 1001..2999 is read as a
    year ("1999" -> "nineteen ninety-nine", "1905" -> "nineteen oh five", "2005" -> "two thousand
    five", "2100" -> "twenty-one hundred"), as in the reference; numbers with separators, signs or
    decimals, and amounts of money, are read as quantities ("1,999" -> "one thousand, nine hundred
    ninety-nine"); a run with a leading zero ("007") or longer than 36 digits is read digit by
    digit; everything else with inflect ("103" -> "one hundred three", "987654321" -> "nine hundred
    eighty-seven million, ..."). A plain digit run without separators is a number, not a phone
    number, as in the reference. [reference: "3.14" -> "three point fourteen", "0.05" -> "zero point
    five", "1,2" -> "twelve", every 1001..2999 a year]
13. Number words never stick to letters of scripts that space their words: "5kg" -> "five kg",
    "MP3" -> "MP three" (but "2025年" stays unspaced). [ours; the reference writes "fivekg"]

Thread safety: inflect's engine keeps per-call state on the instance (`number_to_words` stores its
group counters on `self`), so one engine shared between threads mixes readings ("987654321" came
out with "billion" under 8 threads). Every thread gets its own engine (threading.local; an engine
costs ~10 us to make); everything else here is immutable. `python3 -m benchmarks.frontend_threads`
measures this against one lock around each call (8 threads): for normalisation alone, which is
pure Python under the GIL, the lock was as fast or up to ~1.6x faster on a busy 2-core machine,
but for split_text, the server's actual path, per-thread instances were 1.1-1.5x faster (espeak-ng
runs without the GIL), so the front end uses per-thread instances throughout (see pipeline.text).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable
from fractions import Fraction

__all__ = ["MAX_INFLECT_DIGITS", "cardinal", "normalize_numbers", "ordinal", "read_digits", "read_year"]

MAX_INFLECT_DIGITS = 36
"""inflect cannot name numbers of 10**36 and above: longer runs are read digit by digit."""

_DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

_LOCAL = threading.local()


def _engine():
    """This thread's inflect engine: engines keep per-call state, so threads must not share one."""
    engine = getattr(_LOCAL, "engine", None)
    if engine is None:
        import inflect  # slow (about a second): only on first use

        engine = _LOCAL.engine = inflect.engine()
    return engine


# --- reading one number ----------------------------------------------------------------------


def read_digits(digits: str) -> str:
    """Each digit by name: "007" -> "zero zero seven"."""
    return " ".join(_DIGIT_WORDS[int(digit)] for digit in digits)


def cardinal(number: int) -> str:
    """inflect's words without "and" ("one hundred three"), as the reference; over 36 digits, digit by digit."""
    if number < 0:
        return f"minus {cardinal(-number)}"
    if len(str(number)) > MAX_INFLECT_DIGITS:
        return read_digits(str(number))
    return _engine().number_to_words(number, andword="")


def ordinal(number: int) -> str:
    """inflect's ordinal words, which keep "and" as the reference does: 103 -> "one hundred and third"."""
    if len(str(number)) > MAX_INFLECT_DIGITS:
        return f"{read_digits(str(number))}th"
    engine = _engine()
    return engine.ordinal(engine.number_to_words(number))


def read_year(number: int) -> str:
    """The reference's year reading for 1001..2999: "nineteen oh five", "twenty-one hundred", "two thousand five"."""
    if not 1000 < number < 3000:
        return cardinal(number)
    if number == 2000:
        return "two thousand"
    if 2000 < number < 2010:
        return f"two thousand {cardinal(number - 2000)}"
    century, rest = divmod(number, 100)
    if rest == 0:
        return f"{cardinal(century)} hundred"
    if rest < 10:
        return f"{cardinal(century)} oh {cardinal(rest)}"
    return f"{cardinal(century)} {cardinal(rest)}"


def _integer(digits: str, *, year: bool = False) -> str:
    """A digit run, maybe with thousands separators: a quantity, a code with a leading zero, or a year."""
    if "," in digits:
        return cardinal(int(digits.replace(",", "")))
    if len(digits) > 1 and digits[0] == "0":
        return read_digits(digits)
    if len(digits) > MAX_INFLECT_DIGITS:
        return read_digits(digits)
    number = int(digits)
    return read_year(number) if year else cardinal(number)


def _number(text: str, *, year: bool = False) -> str:
    """`1,234.56` -> "one thousand, two hundred thirty-four point five six"; `.5` -> "point five"."""
    whole, point, fraction = text.partition(".")
    words = _integer(whole, year=year and not point) if whole else ""
    if point:
        words = f"{words} point {read_digits(fraction)}".strip()
    return words


def _sign(sign: str | None) -> str:
    return {"-": "minus ", "−": "minus ", "+": "plus "}.get(sign or "", "")


def _plural_words(words: str) -> str:
    """Pluralise the last word of a number: "nineteen ninety" -> "nineteen nineties"."""
    if words.endswith("y"):
        return words[:-1] + "ies"
    if words.endswith("x"):
        return words + "es"
    return words + "s"


def _fraction(numerator: int, denominator: int) -> str:
    """3/4 -> "three quarters", 1/2 -> "one half", 5/8 -> "five eighths"."""
    if denominator == 2:
        unit = "half" if numerator == 1 else "halves"
    elif denominator == 4:
        unit = "quarter" if numerator == 1 else "quarters"
    else:
        unit = ordinal(denominator).removeprefix("one ")  # 1/100: "one hundredth"
        if numerator != 1:
            unit += "s"
    return f"{cardinal(numerator)} {unit}"


# --- the rules, in order ---------------------------------------------------------------------

_INT = r"(?:[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])|[0-9]+)"  # thousands separators only in 3-digit groups
_NUM = rf"(?:{_INT}(?:\.[0-9]+)?|(?<![\w.])\.[0-9]+)"  # 12, 1,234, 3.14, .5
_SIGN = r"(?:(?<![\w)\].,])(?P<sign>[-−+]))?"  # a sign stuck to the number, not a hyphen after a word

Rule = tuple[re.Pattern, Callable[[re.Match], str]]
_RULES: list[Rule] = []


def _rule(pattern: str, flags: int = 0) -> Callable[[Callable[[re.Match], str]], Callable[[re.Match], str]]:
    """Register `reader` for `pattern`; a reader returns match.group(0) unchanged to decline."""

    def register(reader: Callable[[re.Match], str]) -> Callable[[re.Match], str]:
        _RULES.append((re.compile(pattern, flags), reader))
        return reader

    return register


@_rule(r"(?<![\w.-])([12][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])(?![0-9]|-[0-9])")
def _iso_date(match: re.Match) -> str:
    year, month, day = (int(part) for part in match.groups())
    return f"{_MONTHS[month - 1]} {ordinal(day)}, {read_year(year)}"


def _phone(match: re.Match) -> str:
    text = match.group(0)
    groups = re.findall(r"[0-9]+", text)
    if sum(len(group) for group in groups) < 7:
        return text
    words = ", ".join(read_digits(group) for group in groups)
    return f"plus {words}" if text.startswith("+") else words


_rule(r"(?<![\w+])\+[0-9]{1,3}(?:[ .-]?\(?[0-9]{1,4}\)?){1,6}(?![0-9])")(_phone)
_rule(
    r"(?<![\w+(.,-])(?:1[ .-])?(?:\([0-9]{3}\) ?[0-9]{3}[ .-]|[0-9]{3}(?P<sep>[ .-])[0-9]{3}(?P=sep))[0-9]{4}"
    r"(?![0-9]|[ .-][0-9])",
)(_phone)


@_rule(r"(?<![\w.,:/+-])([0-9]{3})-([0-9]{4})(?![0-9]|[.,:-][0-9])")
def _local_phone(match: re.Match) -> str:
    first, second = (int(group) for group in match.groups())
    if first % 10 == 0 and second % 10 == 0 and first < second:
        return match.group(0)  # "500-1000": a range of round numbers
    return _phone(match)


_AMPM = r"(?:\s?(?P<ampm>[AaPp])\.?[Mm](?P<dot>\.?)(?![A-Za-z]))"


def _ampm(match: re.Match) -> str:
    return f" {match.group('ampm').upper()} M{match.group('dot')}"


@_rule(rf"(?<![0-9:.,])([01]?[0-9]|2[0-4]):([0-5][0-9])(?::([0-5][0-9]))?(?![0-9]|[:.][0-9]){_AMPM}?")
def _time(match: re.Match) -> str:
    hour, minute = int(match.group(1)), int(match.group(2))
    ampm = match.group("ampm")
    words = cardinal(hour)
    if minute == 0:
        if not ampm:
            words += " o'clock" if 1 <= hour <= 12 else " hundred"
    elif minute < 10:
        words += f" oh {cardinal(minute)}"
    else:
        words += f" {cardinal(minute)}"
    if match.group(3):
        seconds = int(match.group(3))
        words += f" and {cardinal(seconds)} {'second' if seconds == 1 else 'seconds'}"
    return words + (_ampm(match) if ampm else "")


@_rule(rf"(?<![0-9:.,])(1[0-2]|0?[1-9]){_AMPM}")
def _hour(match: re.Match) -> str:
    return cardinal(int(match.group(1))) + _ampm(match)


# symbol -> (unit, units, subunit, subunits); the subunit is 1/100 of the unit
_CURRENCIES = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "US$": ("dollar", "dollars", "cent", "cents"),
    "USD": ("dollar", "dollars", "cent", "cents"),
    "€": ("euro", "euros", "cent", "cents"),
    "EUR": ("euro", "euros", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "GBP": ("pound", "pounds", "penny", "pence"),
    "¥": ("yen", "yen", None, None),
    "JPY": ("yen", "yen", None, None),
    "¢": ("cent", "cents", None, None),
}
_SCALES = {
    "k": "thousand",
    "K": "thousand",
    "m": "million",
    "M": "million",
    "mn": "million",
    "b": "billion",
    "B": "billion",
    "bn": "billion",
    "bln": "billion",
    "t": "trillion",
    "T": "trillion",
    "tn": "trillion",
}
_MONEY_NUM = rf"(?:[0-9]+,[0-9]{{2}}(?![0-9])|{_NUM})"  # also a decimal comma: "2,50 €"
_SCALE_WORD = r"(?i:hundred|thousand|million|billion|trillion)"
_SCALE = rf"(?:(?P<suffix>bln|mn|bn|tn|[kKmMbBtT])(?![A-Za-z])|\s(?P<scale>{_SCALE_WORD})(?![A-Za-z]))"


def _money(match: re.Match, currency: str) -> str:
    unit, units, subunit, subunits = _CURRENCIES[currency]
    groups = match.groupdict()
    amount = groups["num"]
    if re.fullmatch(r"[0-9]+,[0-9]{2}", amount):
        amount = amount.replace(",", ".")  # a decimal comma (thousands groups have three digits)
    scale = (groups.get("scale") or _SCALES.get(groups.get("suffix") or "") or "").lower()
    sign = _sign(groups.get("sign") or groups.get("sign2"))
    whole, point, fraction = amount.partition(".")
    if scale:
        return f"{sign}{_number(amount)} {scale} {units}"
    if subunit is None or len(fraction) > 2:
        one = whole.lstrip("0") == "1" and not point
        return f"{sign}{_number(amount)} {unit if one else units}"
    major = int(whole.replace(",", "") or 0)
    minor = int(fraction.ljust(2, "0")) if fraction else 0
    parts = []
    if major or not minor:
        parts.append(f"{cardinal(major)} {unit if major == 1 else units}")
    if minor:
        parts.append(f"{cardinal(minor)} {subunit if minor == 1 else subunits}")
    return sign + ", ".join(parts)


@_rule(
    rf"(?<![\w$€£¥])(?P<sign>[-−+])?(?P<cur>US\$|[$€£¥]|(?:USD|EUR|GBP|JPY) ?)"
    rf"(?P<sign2>[-−])?(?P<num>{_MONEY_NUM}){_SCALE}?"
)
def _money_before(match: re.Match) -> str:
    return _money(match, match.group("cur").strip())


@_rule(
    rf"{_SIGN}(?<![0-9.,])(?P<num>{_MONEY_NUM})(?:\s(?P<scale>{_SCALE_WORD}))?"
    r" ?(?P<cur>[$€£¥¢]|(?:USD|EUR|GBP|JPY)(?![A-Za-z]))"
)
def _money_after(match: re.Match) -> str:
    return _money(match, match.group("cur"))


@_rule(rf"(?<![\w.,:/+-])(?P<a>{_NUM})(?P<ap> ?%)?(?:-| ?[–—] ?)(?P<b>{_NUM})(?P<bp> ?%)?(?![0-9]|[.,:/-][0-9])")
def _range(match: re.Match) -> str:
    first = _number(match.group("a"), year=True) + (" percent" if match.group("ap") else "")
    second = _number(match.group("b"), year=True) + (" percent" if match.group("bp") else "")
    return f"{first} to {second}"


@_rule(rf"{_SIGN}(?<![0-9.,])(?P<num>{_NUM}) ?(?P<unit>[%‰])")
def _percent(match: re.Match) -> str:
    unit = "percent" if match.group("unit") == "%" else "per mille"
    return f"{_sign(match.group('sign'))}{_number(match.group('num'))} {unit}"


@_rule(rf"{_SIGN}(?<![0-9.,])(?P<num>{_NUM}) ?° ?(?P<scale>[CFK](?![A-Za-z]))?")
def _degrees(match: re.Match) -> str:
    amount = match.group("num")
    words = f"{_sign(match.group('sign'))}{_number(amount)} {'degree' if amount == '1' else 'degrees'}"
    scale = {"C": " Celsius", "F": " Fahrenheit", "K": " Kelvin"}.get(match.group("scale") or "", "")
    return words + scale


@_rule(r"(?<![\w'’])(?:['’](?P<short>[1-9]0)|(?P<bare>[1-9]0)|(?P<year>1[1-9][0-9]0|2[0-9][0-9]0))['’]?s(?![A-Za-z])")
def _decade(match: re.Match) -> str:
    if match.group("year"):
        return _plural_words(read_year(int(match.group("year"))))
    return _plural_words(cardinal(int(match.group("short") or match.group("bare"))))


@_rule(rf"(?<![0-9.,])(?P<num>{_INT})(?:st|nd|rd|th)(?![A-Za-z])", re.IGNORECASE)
def _ordinal(match: re.Match) -> str:
    return ordinal(int(match.group("num").replace(",", "")))


_DENOMINATORS = {*range(2, 11), 12, 16, 32, 64, 100}


@_rule(r"(?<![0-9.,/])(?:(?P<whole>[0-9]+) )?(?P<num>[0-9]{1,3})/(?P<den>[0-9]{1,3})(?![0-9]|/[0-9]|[.,][0-9])")
def _slash_fraction(match: re.Match) -> str:
    numerator, denominator = int(match.group("num")), int(match.group("den"))
    if not (0 < numerator < denominator and denominator in _DENOMINATORS):
        return match.group(0)
    words = _fraction(numerator, denominator)
    whole = match.group("whole")
    return f"{_integer(whole)} and {words}" if whole else words


@_rule(r"(?:(?<![0-9.,])(?P<whole>[0-9]+) ?)?(?P<char>[½⅓⅔¼¾⅕⅖⅗⅘⅙⅚⅐⅛⅜⅝⅞⅑⅒])")
def _vulgar_fraction(match: re.Match) -> str:
    value = Fraction(unicodedata.numeric(match.group("char"))).limit_denominator(10)
    words = _fraction(value.numerator, value.denominator)
    whole = match.group("whole")
    return f"{_integer(whole)} and {words}" if whole else words


@_rule(r"(?<![0-9.,])[0-9]+(?:\.[0-9]+){2,}(?![0-9]|\.[0-9])")
def _dotted(match: re.Match) -> str:
    parts = match.group(0).split(".")
    if len(parts[0]) <= 3 and parts[0][0] != "0" and all(len(part) == 3 for part in parts[1:]):
        return cardinal(int("".join(parts)))  # "1.234.567": thousands separated by dots
    return " point ".join(_integer(part, year=len(part) == 4) for part in parts)


@_rule(r"(?<![\w#&])#(?=[0-9])")
def _hash(match: re.Match) -> str:
    return "number "


@_rule(rf"{_SIGN}(?<![0-9])(?P<num>{_NUM})")
def _plain(match: re.Match) -> str:
    sign = match.group("sign")
    return _sign(sign) + _number(match.group("num"), year=not sign)


@_rule(r"[0-9]+")
def _leftover(match: re.Match) -> str:
    return _integer(match.group(0), year=True)


def _spaced_letter(char: str) -> bool:
    """A letter of a script that separates words with spaces (Latin ... Indic: below Thai, U+0E00)."""
    return char.isalpha() and char < "\u0e00"


def _apply(pattern: re.Pattern, reader: Callable[[re.Match], str], text: str) -> str:
    """Replace every match by its reading, spaced from letters it would otherwise stick to."""

    def replace(match: re.Match) -> str:
        words = reader(match)
        if words == match.group(0):
            return words
        start, end = match.span()
        if start and _spaced_letter(text[start - 1]) and not words.startswith(" "):
            words = " " + words
        if end < len(text) and _spaced_letter(text[end]) and not words.endswith(" "):
            words += " "
        return words

    return pattern.sub(replace, text)


def normalize_numbers(text: str) -> str:
    """Spell out every ASCII digit in `text` in English words by the rules in this module's docstring.

    A pure function of `text`: the same input gives the same output in any thread, and the output
    has no ASCII digits, so normalising it again changes nothing.
    """
    if not any("0" <= char <= "9" or "\u00bc" <= char <= "\u00be" or "\u2150" <= char <= "\u215e" for char in text):
        return text
    for pattern, reader in _RULES:
        text = _apply(pattern, reader, text)
    return text
