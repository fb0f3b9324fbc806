"""English number reading: spell out the digits in text so that espeak-ng reads them as a person would.

The reference Zonos front end (`zonos/conditioning.py`, `normalize_numbers`, itself keithito/tacotron's
`text/numbers.py`) spells numbers with inflect for every language but Japanese; so does this module,
keeping the reference's readings where they are right (the model was trained on them) and fixing the
kinds of input it misreads. `normalize_numbers` applies these rules, each to the digits the rules
before it left, and no ASCII digit survives:

1. Versions: "v1.2.3" -> "version one point two point three", "version 3.11" -> "version three point
   eleven" (each part a whole number after "v" or "version"). [ours]
2. Dates, read "January fifteenth, twenty twenty-four": year first ("2024-01-15", "2024/1/15",
   "2024.01.15"), day.month.year with dots ("31.12.2024"), and with slashes or hyphens month first,
   the US order, when both orders are possible ("1/2/2000" is January 2nd; "12/25/2023",
   "12-25-2023"), day first only when the first number cannot be a month ("25/12/2023"). A
   4-digit year is needed, and a real day ("2/30/2024" is no date). [ours]
3. IPv4 addresses digit by digit with "dot": "192.168.0.1" -> "one nine two dot one six eight dot
   zero dot one" (four parts of 0-255 without leading zeros; ":8080" -> "port eight thousand
   eighty"). [ours]
4. Phone numbers and IDs are read digit by digit, group by group ("987-654-3210" -> "nine eight seven,
   six five four, three two one zero"): "+" and 7 or more digits in groups ("+1 555 123 4567"), North
   American forms ("(555) 123-4567", "1-800-555-0199", "555.123.4567", "555 123 4567": 3-3-4 digits
   with one kind of separator), "555-1234" (but a pair of round numbers such as "500-1000" is a range),
   three or more hyphenated groups of 7 or more digits in all (SSN "123-45-6789", ISBN
   "978-3-16-148410-0", a final "-X" check digit is "X"; "10-20-30" is not one), an ISBN after "ISBN"
   with or without separators, and cards and SSNs in spaced groups ("4111 1111 1111 1111", "3782 822463
   10005", "123 45 6789"; four rising years such as "2019 2020 2021 2022" are not). [ours; the
   reference reads the groups as numbers]
5. Durations: a fraction of a second or more than 24 hours makes "H:MM:SS" and "M:SS" a
   duration: "1:05:09.5" -> "one hour, five minutes and nine point five seconds", "3:45.2" ->
   "three minutes and forty-five point two seconds" (zero parts left out). [ours]
6. Ratios: "3:1" -> "three to one", "16:9", "1:100", "1.5:1": any part after a colon that is not
   two digits, or "ratio", "odds", "scale" or "aspect" after it ("10:30 ratio"); otherwise two
   digits after the colon make a time ("John 3:16" -> "three sixteen"; "Genesis 1:1" -> "one to
   one"). [ours]
7. Times: "10:30" -> "ten thirty", "9:05 am" -> "nine oh five A M", "9pm" -> "nine P M"; a full
   hour is "ten o'clock" on the 12-hour clock and "fourteen hundred" on the 24-hour one ("14:00"),
   "00:00", "0:00" and "24:00" are "midnight"; seconds are added as "and N seconds" unless zero
   ("10:30:00" -> "ten thirty"). [ours]
8. Money, with the symbol before or after the amount, a space between allowed ("€ 5"): $, US$, €, £, ¥,
   ₹, Rs, ₩, ¢ and USD EUR GBP JPY INR KRW CHF, and the regional dollars, pesos and reais A$/AU$/AUD,
   C$/CA$/CAD, HK$/HKD, NZ$/NZD, S$/SG$/SGD, NT$/TWD, MX$/MXN, R$/BRL ("A$5" -> "five Australian
   dollars"; "US$" and "USD" are plain "dollars"; CAD only before the amount): "$1.50" -> "one dollar,
   fifty cents", "$0.5" -> "fifty cents" (one decimal is tenths), "£3.20" -> "three pounds, twenty
   pence", "€2" -> "two euros", "¥500" -> "five hundred yen", "-$5" -> "minus five dollars"; a scale
   word or suffix comes before the unit: "$5.3 billion" / "$5.3bn" -> "five point three billion
   dollars", "$5k" -> "five thousand dollars", "$2M"/"$2MM" -> "two million dollars". A unit word or
   code already after the amount is not said twice ("$3 billion dollars", "€5 euros", "£2 pounds", "$5
   USD"), and names the dollar if it can ("$5 Canadian dollars", "$5 AUD" -> "five Canadian dollars",
   "five Australian dollars"). Ranges say the unit once, at the end: "$10-20 million" -> "ten to twenty
   million dollars", "$5-$10", "$5–10", "5-10 €" -> "five to ten dollars" / "euros", "$10 to $20
   million", "$10 to 20 million" (but "$5 to 10 people" is no range: after "to" the sign again or a
   scale is needed); with cents each amount in full ("$1.50-2.50" -> "one dollar, fifty cents to two
   dollars, fifty cents"). More than two decimals are read as a decimal ("$1.234" -> "one point two
   three four dollars"); a comma before exactly two digits is a decimal comma ("2,50 €" -> "two euros,
   fifty cents"), dots between 3-digit groups thousands separators ("€1.234.567"); a sign before any
   other dotted chain is no amount ("$1.2.3" -> "one point two point three", the sign dropped).
   [reference: "$" and "£" only, no scale words, "$0.5" -> "five cents", "£1" -> "one pounds"]
9. Ranges: "1-5" and "1 – 5" -> "one to five", "10-20%" -> "ten to twenty percent", "5-10°C" ->
   "five to ten degrees Celsius", "10-20M" -> "ten to twenty million". [ours]
10. Scale suffixes without currency: "1.5M" -> "one point five million", "100k"/"10K" -> "one
    hundred thousand"/"ten thousand", "7B" -> "seven billion", "2.5bn", "3bln" (k K M B bn Bn BN
    bln right after the number, nothing after them but a non-word character). Not a scale: "5kg",
    "5MB", lowercase "m"/"b" and "T" (metres, bits, tesla), "B2B" (a letter before), "4K"/"8K"
    (screen resolutions: "four K"), a k or K before "run", "race", "walk" or "marathon" ("5K run"
    -> "five K run"), and a whole number after a place word such as "gate", "room", "seat",
    "flat", "platform" ("Gate 12B" -> "twelve B"). [ours]
11. Percent, per mille, degrees: "3.5%" -> "three point five percent", "25°C" -> "twenty-five
    degrees Celsius", "-5°C" -> "minus five degrees Celsius", "20°" -> "twenty degrees", "º" before
    C or F as "°"; a comma before one or two digits is a decimal comma ("1,5°C", "3,5%"). [ours;
    the reference leaves "%" to espeak, which says "percent" too]
12. Decades: "1990s" -> "nineteen nineties", "'90s" and "90s" -> "nineties". [ours]
13. Ordinals: "1st" -> "first", "103rd" -> "one hundred and third" (inflect's reading, with "and",
    as in the reference), "1,000th" -> "one thousandth".
14. Fractions: "1/2" -> "one half", "3/4" -> "three quarters", "2 5/8" -> "two and five eighths",
    "½" -> "one half" (a proper fraction with denominator 2-10, 12, 16, 32, 64 or 100; other
    "a/b" keep the slash between two numbers: "24/7" -> "twenty-four/seven"). [ours]
15. Dotted chains: "2.5.1" -> "two point five point one", "3.11.7" -> "three point eleven point
    seven", but "1.234.567" (3-digit groups after the first) is one number with dots as thousands
    separators. [ours]
16. "#1" -> "number one". [ours]
17. Other numbers: a leading sign is read ("-3" -> "minus three", "+5" -> "plus five"); decimals
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
18. Number words never stick to letters of scripts that space their words: "5kg" -> "five kg",
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
_COMMA_NUM = rf"(?:[0-9]+,[0-9]{{1,2}}(?![0-9])|{_NUM})"  # also a decimal comma: "1,5°C", "3,5%"
_DECIMAL_COMMA = re.compile(r"[0-9]+,[0-9]{1,2}")
_DOTTED_THOUSANDS = re.compile(r"[1-9][0-9]{0,2}(?:\.[0-9]{3}){2,}")  # "1.234.567": dots as thousands separators
_NOT_MORE = r"(?![0-9]|\.[0-9])"  # the number ends here: "$1.2.3" is no amount

Rule = tuple[re.Pattern, Callable[[re.Match], str]]
_RULES: list[Rule] = []


def _rule(pattern: str, flags: int = 0) -> Callable[[Callable[[re.Match], str]], Callable[[re.Match], str]]:
    """Register `reader` for `pattern`; a reader returns match.group(0) unchanged to decline."""

    def register(reader: Callable[[re.Match], str]) -> Callable[[re.Match], str]:
        _RULES.append((re.compile(pattern, flags), reader))
        return reader

    return register


def _decimal_point(amount: str) -> str:
    """A decimal comma ("1,5" -> "1.5") is a comma before one or two digits: thousands groups have three."""
    if _DOTTED_THOUSANDS.fullmatch(amount):
        return amount.replace(".", "")
    return amount.replace(",", ".") if _DECIMAL_COMMA.fullmatch(amount) else amount


# versions and dates -------------------------------------------------------------------------


@_rule(r"(?:(?<![\w.])(?P<v>[vV])|(?<=\b[Vv]ersion ))(?P<num>[0-9]+(?:\.[0-9]+)+)(?![0-9]|\.[0-9])")
def _version(match: re.Match) -> str:
    """A version: "v1.2.3" -> "version one point two point three", "version 3.11" -> "version three point eleven"."""
    words = " point ".join(_integer(part, year=len(part) == 4) for part in match.group("num").split("."))
    return f"version {words}" if match.group("v") else words


_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _date(year: int, month: int, day: int) -> str | None:
    """The date as "January fifteenth, twenty twenty-four", or None for no such day."""
    if not (1 <= month <= 12 and 1 <= day <= _DAYS_IN_MONTH[month - 1]):
        return None
    return f"{_MONTHS[month - 1]} {ordinal(day)}, {read_year(year)}"


@_rule(r"(?<![\w.,/:+-])([12][0-9]{3})([-/.])([0-9]{1,2})\2([0-9]{1,2})(?![0-9]|[-/.,][0-9])")
def _year_first_date(match: re.Match) -> str:
    year, separator, month, day = match.groups()
    if separator == "." and (len(month) != 2 or len(day) != 2):
        return match.group(0)  # "2024.1.5" is a version; "2024.01.15" a date
    return _date(int(year), int(month), int(day)) or match.group(0)


@_rule(r"(?<![\w.,/:+-])([0-9]{1,2})([-/.])([0-9]{1,2})\2([12][0-9]{3})(?![0-9]|[-/.,][0-9])")
def _year_last_date(match: re.Match) -> str:
    first, separator, second, year = match.groups()
    if separator == "." or int(first) > 12:  # "31.12.2024", "25/12/2023": the day first
        words = _date(int(year), int(second), int(first))
    else:  # "12/25/2023", "1/2/2000", "12-25-2023": the US order, month first
        words = _date(int(year), int(first), int(second))
    return words or match.group(0)


# addresses, phone numbers and other digit groups -----------------------------------------------

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"


@_rule(rf"(?<![\w.,:])({_OCTET}(?:\.{_OCTET}){{3}})(?::([0-9]{{1,5}}))?(?![0-9]|[.:][0-9])")
def _ip_address(match: re.Match) -> str:
    words = " dot ".join(read_digits(part) for part in match.group(1).split("."))
    return f"{words} port {_integer(match.group(2))}" if match.group(2) else words


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


@_rule(r"(?<![\w.,:/+$€£¥₹₩-])([0-9]{3})-([0-9]{4})(?![0-9]|[.,:-][0-9])")
def _local_phone(match: re.Match) -> str:
    first, second = (int(group) for group in match.groups())
    if first % 10 == 0 and second % 10 == 0 and first < second:
        return match.group(0)  # "500-1000": a range of round numbers
    return _phone(match)


@_rule(r"(?<![\w.,:/+$€£¥₹₩-])[0-9]+(?:-[0-9]+){2,}(?:-[Xx](?!\w))?(?![0-9]|-[0-9]|[.,][0-9])")
def _digit_groups(match: re.Match) -> str:
    """An ID: "123-45-6789", "978-3-16-148410-0" (three or more groups, seven or more digits)."""
    groups = match.group(0).split("-")
    if sum(len(group) for group in groups) < 7:
        return match.group(0)  # "1-2-3", "10-20-30"
    return ", ".join("X" if group in ("X", "x") else read_digits(group) for group in groups)


@_rule(r"(?<!\w)(?P<label>ISBN(?:-1[03])?:? ?)(?P<code>[0-9](?:[ -]?[0-9]){8,11}(?:[ -]?[0-9Xx]))(?![\w-])")
def _isbn(match: re.Match) -> str:
    """An ISBN with or without separators: "ISBN 9780306406157" digit by digit."""
    groups = match.group("code").upper().replace(" ", "-").split("-")
    words = ", ".join(" ".join(_DIGIT_WORDS[int(c)] if c != "X" else "X" for c in group) for group in groups)
    return match.group("label") + words


@_rule(
    r"(?<![\w.,:/+-])(?:[0-9]{4}(?: [0-9]{4}){3}|[0-9]{4} [0-9]{6} [0-9]{5}|[0-9]{3} [0-9]{2} [0-9]{4})"
    r"(?![0-9]| [0-9])"
)
def _spaced_groups(match: re.Match) -> str:
    """A card or social security number: "4111 1111 1111 1111", "3782 822463 10005", "123 45 6789"."""
    groups = match.group(0).split(" ")
    if all(len(group) == 4 and 1000 < int(group) < 3000 for group in groups) and groups == sorted(groups):
        return match.group(0)  # "2019 2020 2021 2022": years
    return ", ".join(read_digits(group) for group in groups)


# durations, ratios and times ------------------------------------------------------------------


def _duration(hours: int, minutes: int, seconds: str) -> str:
    """1, 5, "09.5" -> "one hour, five minutes and nine point five seconds"; zero parts are left out."""
    whole, point, fraction = seconds.partition(".")
    seconds = str(int(whole)) + point + fraction
    parts = []
    if hours:
        parts.append(f"{cardinal(hours)} {'hour' if hours == 1 else 'hours'}")
    if minutes:
        parts.append(f"{cardinal(minutes)} {'minute' if minutes == 1 else 'minutes'}")
    if float(seconds) or not parts:
        parts.append(f"{_number(seconds)} {'second' if seconds == '1' else 'seconds'}")
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


@_rule(r"(?<![0-9:.,])([0-9]{1,3}):([0-5][0-9]):([0-5][0-9](?:\.[0-9]+)?)(?![0-9]|[:.][0-9])")
def _hours_minutes_seconds(match: re.Match) -> str:
    hours, minutes, seconds = match.groups()
    if "." not in seconds and int(hours) <= 24:
        return match.group(0)  # a time of day: "10:30:15"
    return _duration(int(hours), int(minutes), seconds)


@_rule(r"(?<![0-9:.,])([0-9]{1,3}):([0-5][0-9]\.[0-9]+)(?![0-9]|[:.][0-9])")
def _minutes_seconds(match: re.Match) -> str:
    return _duration(0, int(match.group(1)), match.group(2))


_RATIO_WORD = re.compile(r" ?(?:ratio|odds|scale|aspect)\b", re.IGNORECASE)


@_rule(r"(?<![0-9:.,])[0-9]+(?:\.[0-9]+)?(?::[0-9]+(?:\.[0-9]+)?)+(?![0-9]|[:.][0-9])")
def _ratio(match: re.Match) -> str:
    """A ratio: "3:1" -> "three to one", "16:9", "1:100", "1.5:1", "10:30 ratio"; but "10:30" is a time."""
    parts = match.group(0).split(":")
    time_like = any(len(part.partition(".")[0]) == 2 for part in parts[1:])
    if time_like and not _RATIO_WORD.match(match.string, match.end()):
        return match.group(0)
    return " to ".join(_number(part) for part in parts)


_AMPM = r"(?:\s?(?P<ampm>[AaPp])\.?[Mm](?P<dot>\.?)(?![A-Za-z]))"


def _ampm(match: re.Match) -> str:
    return f" {match.group('ampm').upper()} M{match.group('dot')}"


@_rule(rf"(?<![0-9:.,])([01]?[0-9]|2[0-4]):([0-5][0-9])(?::([0-5][0-9]))?(?![0-9]|[:.][0-9]){_AMPM}?")
def _time(match: re.Match) -> str:
    hour, minute = int(match.group(1)), int(match.group(2))
    ampm = match.group("ampm")
    words = cardinal(hour)
    if minute == 0:
        if ampm:
            pass
        elif hour % 24 == 0:
            words = "midnight"  # "00:00", "0:00", "24:00"
        else:
            words += " o'clock" if hour <= 12 else " hundred"
    elif minute < 10:
        words += f" oh {cardinal(minute)}"
    else:
        words += f" {cardinal(minute)}"
    seconds = int(match.group(3) or 0)
    if seconds:
        words += f" and {cardinal(seconds)} {'second' if seconds == 1 else 'seconds'}"
    return words + (_ampm(match) if ampm else "")


@_rule(rf"(?<![0-9:.,])(1[0-2]|0?[1-9]){_AMPM}")
def _hour(match: re.Match) -> str:
    return cardinal(int(match.group(1))) + _ampm(match)


# money ----------------------------------------------------------------------------------------

_DOLLAR = ("dollar", "dollars", "cent", "cents")
# symbol or code -> (unit, units, subunit, subunits); the subunit is 1/100 of the unit
_CURRENCIES = {
    "$": _DOLLAR,
    "US$": _DOLLAR,
    "USD": _DOLLAR,
    **dict.fromkeys(["A$", "AU$", "AUD"], ("Australian dollar", "Australian dollars", "cent", "cents")),
    **dict.fromkeys(["C$", "CA$", "CAD"], ("Canadian dollar", "Canadian dollars", "cent", "cents")),
    **dict.fromkeys(["HK$", "HKD"], ("Hong Kong dollar", "Hong Kong dollars", "cent", "cents")),
    **dict.fromkeys(["NZ$", "NZD"], ("New Zealand dollar", "New Zealand dollars", "cent", "cents")),
    **dict.fromkeys(["S$", "SG$", "SGD"], ("Singapore dollar", "Singapore dollars", "cent", "cents")),
    **dict.fromkeys(["NT$", "TWD"], ("New Taiwan dollar", "New Taiwan dollars", "cent", "cents")),
    **dict.fromkeys(["MX$", "MXN"], ("Mexican peso", "Mexican pesos", "centavo", "centavos")),
    **dict.fromkeys(["R$", "BRL"], ("Brazilian real", "Brazilian reais", "centavo", "centavos")),
    **dict.fromkeys(["€", "EUR"], ("euro", "euros", "cent", "cents")),
    **dict.fromkeys(["£", "GBP"], ("pound", "pounds", "penny", "pence")),
    **dict.fromkeys(["¥", "JPY"], ("yen", "yen", None, None)),
    **dict.fromkeys(["₹", "Rs", "INR"], ("rupee", "rupees", "paisa", "paise")),
    **dict.fromkeys(["₩", "KRW"], ("won", "won", None, None)),
    "CHF": ("Swiss franc", "Swiss francs", "centime", "centimes"),
    "¢": ("cent", "cents", None, None),
}
_CODES = r"(?:USD|AUD|CAD|HKD|NZD|SGD|TWD|MXN|BRL|EUR|GBP|JPY|INR|KRW|CHF)(?![A-Za-z])"
_CUR_BEFORE = rf"(?P<cur>(?:US|AU|A|CA|C|HK|NZ|SG|S|NT|MX|R)\$|[$€£¥₹₩]|{_CODES}|Rs\.?(?= ?[0-9]))"
_CUR_AFTER = rf"(?P<cur>[$€£¥¢₹₩]|(?!CAD){_CODES})"  # "3 CAD drawings" is no money
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
    "MM": "million",
    "Bn": "billion",
    "BN": "billion",
}
# also a decimal comma ("2,50 €") and dots as thousands separators ("€1.234.567")
_MONEY_NUM = rf"(?:{_DOTTED_THOUSANDS.pattern}(?![0-9]|\.[0-9])|[0-9]+,[0-9]{{2}}(?![0-9])|{_NUM})"
_SCALE_WORD = r"(?i:hundred|thousand|million|billion|trillion)"
# a unit word already after the amount ("$3 billion dollars") is said once
_UNIT_WORD = (
    r"(?P<word> +(?:(?:(?P<adj>US|U\.S\.|American|Australian|Canadian|Hong Kong|New Zealand|Singapore|New Taiwan"
    r"|Mexican|Brazilian|Swiss|Indian|Korean|Chinese|Japanese) +)?"
    rf"(?P<uw>(?i:dollars?|euros?|pounds?|yen|rupees?|won|francs?|pesos?|reais|real|yuan))|(?P<code>{_CODES})))"
)
_SINGULAR = {"dollars": "dollar", "euros": "euro", "pounds": "pound", "rupees": "rupee", "francs": "franc"}
_SINGULAR |= {"pesos": "peso", "reais": "real"}


def _money_scale(tag: str) -> str:
    """A scale word or suffix after an amount: "$5.3 billion", "$5.3bn", "$5k"."""
    return (
        rf"(?:(?P<{tag}suffix>bln|mn|bn|Bn|BN|tn|MM|[kKmMbBtT])(?![A-Za-z])"
        rf"|\s(?P<{tag}scale>{_SCALE_WORD})(?![A-Za-z]))"
    )


def _scale_of(match: re.Match, tag: str) -> str:
    groups = match.groupdict()
    return (groups.get(f"{tag}scale") or _SCALES.get(groups.get(f"{tag}suffix") or "") or "").lower()


def _currency(match: re.Match) -> tuple[tuple, str]:
    """The currency's names, and what of the words after the amount is still to be said."""
    names = _CURRENCIES[match.group("cur").strip().rstrip(".")]
    word = match.group("word")
    if not word:
        return names, ""
    code = match.group("code")
    if code:  # "$5 USD", "$5 AUD" -> "five Australian dollars"
        coded = _CURRENCIES[code]
        if coded[0].split()[-1] != names[0].split()[-1]:
            return names, word  # "$5 EUR": not this currency
        return (coded if " " in coded[0] else names), ""
    said = match.group("uw").lower()
    if _SINGULAR.get(said, said) != names[0].split()[-1]:
        return names, word  # "$5 won": not this currency's unit
    adjective = match.group("adj")
    if adjective and " " not in names[0]:  # "$5 Canadian dollars" -> "five Canadian dollars"
        names = (f"{adjective} {names[0]}", f"{adjective} {names[1]}", *names[2:])
    return names, ""


def _amount(amount: str, scale: str, names: tuple) -> str:
    """An amount: "1.50" -> "one dollar, fifty cents", "0.5" -> "fifty cents", ("5.3", "billion") -> "five point
    three billion dollars"."""
    unit, units, subunit, subunits = names
    whole, point, fraction = amount.partition(".")
    if scale:
        return f"{_number(amount)} {scale} {units}"
    if subunit is None or len(fraction) > 2:
        one = whole.lstrip("0") == "1" and not point
        return f"{_number(amount)} {unit if one else units}"
    major = int(whole.replace(",", "") or 0)
    minor = int(fraction.ljust(2, "0")) if fraction else 0
    parts = []
    if major or not minor:
        parts.append(f"{cardinal(major)} {unit if major == 1 else units}")
    if minor:
        parts.append(f"{cardinal(minor)} {subunit if minor == 1 else subunits}")
    return ", ".join(parts)


@_rule(r"(?<![\w$€£¥₹₩])[$€£¥₹₩](?=(?P<chain>[0-9]+(?:\.[0-9]+){2,})(?![0-9]|\.[0-9]))")
def _not_money(match: re.Match) -> str:
    """A currency sign before a dotted chain ("$1.2.3") marks no amount: the chain is read alone (rule 15)."""
    return match.group(0) if _DOTTED_THOUSANDS.fullmatch(match.group("chain")) else ""


def _money_range(match: re.Match) -> str:
    """A range of amounts, the unit once at the end: "$10-20 million" -> "ten to twenty million dollars"."""
    names, after = _currency(match)
    first, second = _decimal_point(match.group("a")), _decimal_point(match.group("b"))
    first_scale, second_scale = _scale_of(match, "a"), _scale_of(match, "b")
    sign_first = match.start("cur") < match.start("a")
    if match.group("dash") == " to " and sign_first and not (match.group("cur2") or second_scale):
        return match.group(0)  # "$5 to 10 people": no range
    if not (first_scale or second_scale) and names[2] and ("." in first or "." in second):
        return f"{_amount(first, '', names)} to {_amount(second, '', names)}{after}"  # with cents: each in full
    first = _number(first) + (f" {first_scale}" if first_scale else "")
    second_words = _number(second) + (f" {second_scale}" if second_scale else "")
    one = second.lstrip("0") == "1" and not second_scale
    return f"{first} to {second_words} {names[0] if one else names[1]}{after}"


@_rule(
    rf"(?<![\w$€£¥₹₩.,-]){_CUR_BEFORE} ?(?P<a>{_MONEY_NUM}){_NOT_MORE}{_money_scale('a')}?(?P<dash> ?[-–—] ?| to )"
    rf"(?:(?P<cur2>(?P=cur)) ?)?"
    rf"(?P<b>{_MONEY_NUM}){_NOT_MORE}{_money_scale('b')}?{_UNIT_WORD}?"
)
def _money_range_before(match: re.Match) -> str:
    return _money_range(match)


@_rule(
    rf"(?<![\w.,-])(?P<a>{_MONEY_NUM}){_NOT_MORE}(?:\s(?P<ascale>{_SCALE_WORD}))?(?P<dash> ?[-–—] ?| to )"
    rf"(?P<b>{_MONEY_NUM}){_NOT_MORE}(?:\s(?P<bscale>{_SCALE_WORD}))? ?{_CUR_AFTER}{_UNIT_WORD}?"
)
def _money_range_after(match: re.Match) -> str:
    return _money_range(match)


def _money(match: re.Match) -> str:
    names, after = _currency(match)
    sign = _sign(match.group("sign") or match.groupdict().get("sign2"))
    return sign + _amount(_decimal_point(match.group("num")), _scale_of(match, ""), names) + after


_rule(
    rf"(?<![\w$€£¥₹₩])(?P<sign>[-−+])?{_CUR_BEFORE} ?(?P<sign2>[-−])?(?P<num>{_MONEY_NUM}){_NOT_MORE}"
    rf"{_money_scale('')}?{_UNIT_WORD}?"
)(_money)
_rule(
    rf"{_SIGN}(?<![0-9.,])(?P<num>{_MONEY_NUM}){_NOT_MORE}(?:\s(?P<scale>{_SCALE_WORD}))?(?P<suffix>)"
    rf" ?{_CUR_AFTER}{_UNIT_WORD}?"
)(_money)


# ranges, scales and units ---------------------------------------------------------------------

_BARE_SCALES = {"k": "thousand", "K": "thousand", "M": "million", "B": "billion", "bln": "billion"}
_BARE_SCALES |= {"bn": "billion", "Bn": "billion", "BN": "billion"}
_BARE_SUFFIX = r"(?:bln|bn|Bn|BN|[kKMB])(?!\w)"  # "100k", "1.5M", "7B", "2.5bn"; not "5kg", "5MB", "5m", "3T"
_RANGE_UNIT = r" ?(?:%|‰|°(?: ?[CFK](?![A-Za-z]))?)"
_UNIT_NAMES = {"%": " percent", "‰": " per mille", "C": " Celsius", "F": " Fahrenheit", "K": " Kelvin"}


@_rule(
    rf"(?<![\w.,:/+-])(?P<a>{_NUM})(?P<asuffix>{_BARE_SUFFIX})?(?P<ap> ?%)?(?:-| ?[–—] ?)"
    rf"(?P<b>{_NUM})(?![0-9]|[.,:/-][0-9])(?P<bsuffix>{_BARE_SUFFIX})?(?P<bunit>{_RANGE_UNIT})?"
)
def _range(match: re.Match) -> str:
    """A range: "1-5" -> "one to five", "10-20%", "10-20M" -> "ten to twenty million", "5-10°C"."""
    suffixes = match.group("asuffix"), match.group("bsuffix")
    year = not any(suffixes)
    first = _number(match.group("a"), year=year) + (f" {_BARE_SCALES[suffixes[0]]}" if suffixes[0] else "")
    second = _number(match.group("b"), year=year) + (f" {_BARE_SCALES[suffixes[1]]}" if suffixes[1] else "")
    if match.group("ap"):
        first += " percent"
    unit = (match.group("bunit") or "").replace(" ", "")
    if unit.startswith("°"):
        second += " degrees" + _UNIT_NAMES.get(unit[1:], "")
    elif unit:
        second += _UNIT_NAMES[unit]
    return f"{first} to {second}"


_RACE = re.compile(r"[ -]?(?:fun run|run|race|walk|runs|races|marathon)\b", re.IGNORECASE)
_PLACE = re.compile(
    r"\b(?:room|flat|apt|apartment|suite|unit|gate|seat|row|platform|bus|route|level|floor|terminal|block"
    r"|building|no|pier|berth|lot|aisle|stand|ward|bay|track|locker|cabin|box)\.? ?$",
    re.IGNORECASE,
)


@_rule(rf"{_SIGN}(?<![\w.,])(?P<num>{_NUM})(?P<suffix>{_BARE_SUFFIX})")
def _scaled(match: re.Match) -> str:
    """A scale suffix: "1.5M" -> "one point five million", "100k", "7B", "2.5bn"; not "4K", "5K run", "Gate 12B"."""
    amount, suffix = match.group("num"), match.group("suffix")
    if suffix == "K" and amount in ("4", "8"):
        return match.group(0)  # a screen resolution: "four K"
    if suffix in ("k", "K") and _RACE.match(match.string, match.end()):
        return match.group(0)  # a race: "five K run"
    if "." not in amount and _PLACE.search(match.string, max(0, match.start() - 24), match.start()):
        return match.group(0)  # a seat, flat or gate: "twelve B"
    return f"{_sign(match.group('sign'))}{_number(amount)} {_BARE_SCALES[suffix]}"


@_rule(rf"{_SIGN}(?<![0-9.,])(?P<num>{_COMMA_NUM}) ?(?P<unit>[%‰])")
def _percent(match: re.Match) -> str:
    unit = "percent" if match.group("unit") == "%" else "per mille"
    return f"{_sign(match.group('sign'))}{_number(_decimal_point(match.group('num')))} {unit}"


@_rule(rf"{_SIGN}(?<![0-9.,])(?P<num>{_COMMA_NUM}) ?(?:°|º(?= ?[CF])) ?(?P<scale>[CFKcf](?![A-Za-z]))?")
def _degrees(match: re.Match) -> str:
    amount = _decimal_point(match.group("num"))
    words = f"{_sign(match.group('sign'))}{_number(amount)} {'degree' if amount == '1' else 'degrees'}"
    return words + _UNIT_NAMES.get((match.group("scale") or "").upper(), "")


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
