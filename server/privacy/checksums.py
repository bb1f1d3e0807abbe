"""Check digits of the identifiers the detector looks for.

Each function takes the candidate as matched (separators included) and says whether it is
a well-formed identifier. A pattern alone matches many harmless numbers; the checksum is
what keeps order numbers, timestamps and invoice ids from being called personal data.
"""

from __future__ import annotations

from collections import Counter

# Every ASCII character but a digit, to delete: the candidates are ASCII (one C call).
_ASCII_NON_DIGITS = str.maketrans(
    "", "", "".join(chr(c) for c in range(128) if c not in b"0123456789")
)


def digits_of(text: str) -> str:
    if text.isascii():
        return text.translate(_ASCII_NON_DIGITS)
    return "".join(c for c in text if c.isdigit())


# A digit's value doubled, less 9 when that is over 9, as Luhn counts every second one.
_LUHN_DOUBLED = {str(d): (2 * d - 9 if d > 4 else 2 * d) for d in range(10)}


def luhn_ok(number: str) -> bool:
    """The Luhn (mod 10) check that every payment card number (ASCII digits) carries."""
    if not (number.isascii() and number.isdigit()):
        return not number  # no digits: nothing to check
    total = sum(map(int, number[::-2])) + sum(map(_LUHN_DOUBLED.__getitem__, number[-2::-2]))
    return total % 10 == 0


# Issuer prefixes (IIN ranges) of the networks in wide use, by length. A Luhn-valid number
# outside them is far more likely an order or tracking number than a card.
def _card_prefix_ok(number: str) -> bool:
    n = len(number)
    two, four, six = int(number[:2]), int(number[:4]), int(number[:6])
    if number[0] == "4":  # Visa
        return n in (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:  # Mastercard
        return n == 16
    if two in (34, 37):  # American Express
        return n == 15
    if two in (36, 38, 39) or 300 <= int(number[:3]) <= 305:  # Diners Club
        return 14 <= n <= 19
    if four == 6011 or two == 65 or 644 <= int(number[:3]) <= 649 or 622126 <= six <= 622925:
        return 16 <= n <= 19  # Discover
    if 3528 <= four <= 3589:  # JCB
        return 16 <= n <= 19
    if two == 62:  # UnionPay
        return 16 <= n <= 19
    if two == 50 or 56 <= two <= 69:  # Maestro
        return 12 <= n <= 19
    return False


def payment_card_ok(candidate: str) -> bool:
    number = digits_of(candidate)
    if not 13 <= len(number) <= 19:
        return False
    if len(set(number)) == 1:  # 0000 0000 0000 0000: a placeholder, not a card
        return False
    return _card_prefix_ok(number) and luhn_ok(number)


# Lengths of the IBAN of each country in the SWIFT IBAN registry.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27,
    "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RU": 33, "SA": 24, "SC": 31, "SD": 18,
    "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


# For `str.translate`, each ASCII character as ISO 13616 reads it: A is 10, B 11... Z 35,
# the others themselves. (A list: every lookup hits, which a dict's misses do not.)
_IBAN_DIGITS = [str(int(chr(c), 36)) if chr(c).isupper() else chr(c) for c in range(128)]


def iban_ok(candidate: str) -> bool:
    """ISO 13616: the country's length, then mod 97 of the rearranged number equals 1."""
    iban = candidate.replace(" ", "").upper()
    if IBAN_LENGTHS.get(iban[:2]) != len(iban) or not iban.isalnum():
        return False
    rearranged = iban[4:] + iban[:4]
    return int(rearranged.translate(_IBAN_DIGITS)) % 97 == 1


def us_ssn_ok(candidate: str) -> bool:
    """US SSNs have no check digit; the SSA never issues these areas, groups and serials."""
    number = digits_of(candidate)
    area, group, serial = number[:3], number[3:5], number[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    # Published in a wallet insert and on many web pages: a sample, not a person.
    return number not in ("078051120", "219099999", "123456789")


def de_tax_id_ok(candidate: str) -> bool:
    """German Steuer-ID: 11 digits, ISO 7064 MOD 11,10 check digit, one digit repeated."""
    number = digits_of(candidate)
    if len(number) != 11 or number[0] == "0":
        return False
    counts = Counter(number[:10])
    # Of the first ten digits exactly one occurs two or three times (three never all in a
    # row); the others occur at most once.
    repeated = [d for d, c in counts.items() if c > 1]
    if len(repeated) != 1 or counts[repeated[0]] > 3 or repeated[0] * 3 in number[:10]:
        return False
    product = 10
    for ch in number[:10]:
        total = (int(ch) + product) % 10 or 10
        product = (total * 2) % 11
    check = (11 - product) % 10
    return check == int(number[10])


def fr_nir_ok(candidate: str) -> bool:
    """French social security number (NIR): the key is 97 - (the 13 digits mod 97)."""
    nir = candidate.replace(" ", "").upper()
    if len(nir) != 15:
        return False
    body, key = nir[:13], nir[13:]
    # Corsica's departments 2A and 2B count as 19 and 18 in the key.
    body = body.replace("2A", "19", 1) if body[5:7] == "2A" else body
    body = body.replace("2B", "18", 1) if body[5:7] == "2B" else body
    if not body.isdigit() or not key.isdigit():
        return False
    return 97 - int(body) % 97 == int(key)


_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def es_dni_ok(candidate: str) -> bool:
    """Spanish DNI (8 digits + letter) or NIE (X/Y/Z + 7 digits + letter): mod 23 letter."""
    value = candidate.replace("-", "").replace(" ", "").upper()
    if value[0] in "XYZ":
        value = str("XYZ".index(value[0])) + value[1:]
    number, letter = value[:-1], value[-1]
    if len(number) != 8 or not number.isdigit():
        return False
    return _DNI_LETTERS[int(number) % 23] == letter


# Odd positions of the Italian codice fiscale map to these values (index = digit or letter).
_CF_ODD = [
    1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23,
]  # fmt: skip


def it_fiscal_code_ok(candidate: str) -> bool:
    """Italian codice fiscale: 15 characters and a check letter computed over them."""
    code = candidate.upper()
    if len(code) != 16:
        return False
    total = 0
    for i, ch in enumerate(code[:15]):
        value = int(ch) if ch.isdigit() else ord(ch) - 65
        total += _CF_ODD[value] if i % 2 == 0 else value
    return chr(65 + total % 26) == code[15]
