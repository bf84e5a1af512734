"""Contract fields from OCR text lines, with regular expressions.

``extract_fields(lines)`` takes the recognised lines of one page in reading order and
returns a ``ContractFields``; a field that is not found is ``None`` (parties: empty).
It tolerates what PP-OCR does to printed text: dropped or doubled spaces, a missing
space between currency and amount, the letter O for a zero inside an IBAN.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["CURRENCIES", "ContractFields", "extract_fields", "iban_is_valid"]

CURRENCIES: dict[str, str] = {"EUR": "EUR", "€": "EUR", "USD": "USD", "$": "USD"}
CURRENCIES.update({"GBP": "GBP", "£": "GBP", "CHF": "CHF"})


@dataclass(frozen=True, slots=True)
class ContractFields:
    contract_no: str | None
    parties: tuple[str, ...]  # supplier first, then customer
    amount: str | None  # as printed with thousands separators, e.g. "12,500.00"
    currency: str | None  # ISO 4217 code
    signed: str | None  # ISO date
    due: str | None  # ISO date
    iban: str | None  # upper case, no spaces
    email: str | None

    @property
    def amount_value(self) -> float | None:
        return None if self.amount is None else float(self.amount.replace(",", ""))


_CUR = r"(?P<cur>EUR|USD|GBP|CHF|€|\$|£)"
_NUM = r"(?P<num>\d{1,3}(?:[,\s]?\d{3})*\.\d{2})"
_AMOUNT = re.compile(rf"{_CUR}\s*{_NUM}\b|{_NUM.replace('num', 'num2')}\s*{_CUR.replace('cur', 'cur2')}")
_DATE_DOTS = re.compile(r"\b(\d{1,2})\s?[./]\s?(\d{1,2})\s?[./]\s?(\d{4})\b")
_DATE_ISO = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_IBAN = re.compile(r"\b([A-Z]{2}\s?[0-9O]{2}(?:\s?[A-Z0-9]){11,30})\b")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+\s?@\s?[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_CONTRACT_NO = re.compile(r"Contract\s*No\.?\s*:?\s*([A-Z]-?\d{4}-?\d{3,6})", re.IGNORECASE)
_PARTY_LABELS = (
    re.compile(r"^\s*(?:Supplier|Seller|Party\s*A|Contractor)\s*:\s*(?P<name>.+?)\s*$", re.I),
    re.compile(r"^\s*(?:Customer|Buyer|Party\s*B|Client)\s*:\s*(?P<name>.+?)\s*$", re.I),
)
_SIGNED_HINT = re.compile(r"sign|dated|effective|made on", re.IGNORECASE)
_DUE_HINT = re.compile(r"due|deadline|payable|pay by", re.IGNORECASE)


def iban_is_valid(iban: str) -> bool:
    """ISO 13616 mod-97 check on an IBAN without spaces."""
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", iban):
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _find_iban(lines: Sequence[str]) -> str | None:
    for line in lines:
        for match in _IBAN.finditer(line.upper()):
            raw = re.sub(r"\s+", "", match.group(1))
            # OCR may read a zero as the letter O; German and most IBANs are digits.
            candidates = [raw, raw[:2] + raw[2:].replace("O", "0")]
            for cand in candidates:
                for end in range(len(cand), 14, -1):  # drop trailing words glued on
                    if iban_is_valid(cand[:end]):
                        return cand[:end]
    return None


def _date(line: str) -> str | None:
    if m := _DATE_ISO.search(line):
        y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
    elif m := _DATE_DOTS.search(line):
        d, mo, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
    else:
        return None
    try:
        return dt.date(y, mo, d).isoformat()
    except ValueError:
        return None


def _amount(lines: Sequence[str]) -> tuple[str | None, str | None]:
    for line in lines:
        if m := _AMOUNT.search(line):
            cur = m.group("cur") or m.group("cur2")
            num = re.sub(r"\s", ",", m.group("num") or m.group("num2"))
            digits = num.replace(",", "")
            whole, cents = digits.split(".")
            return f"{int(whole):,}.{cents}", CURRENCIES[cur]
    return None, None


def _party(lines: Sequence[str], pattern: re.Pattern[str]) -> str | None:
    for line in lines:
        if m := pattern.match(line):
            return re.sub(r"\s+", " ", m.group("name"))
    return None


def extract_fields(lines: Sequence[str]) -> ContractFields:
    """Fields of one page from its OCR lines (top to bottom)."""
    contract_no = next((m.group(1).upper() for line in lines if (m := _CONTRACT_NO.search(line))), None)
    parties = tuple(p for pat in _PARTY_LABELS if (p := _party(lines, pat)) is not None)
    amount, currency = _amount(lines)
    dated = [(line, d) for line in lines if (d := _date(line)) is not None]
    signed = next((d for line, d in dated if _SIGNED_HINT.search(line)), None)
    due = next((d for line, d in dated if _DUE_HINT.search(line)), None)
    if signed is None and dated:
        signed = dated[0][1]
    email = next(
        (m.group(0).replace(" ", "").lower() for line in lines if (m := _EMAIL.search(line))),
        None,
    )
    return ContractFields(
        contract_no=contract_no,
        parties=parties,
        amount=amount,
        currency=currency,
        signed=signed,
        due=due,
        iban=_find_iban(lines),
        email=email,
    )
