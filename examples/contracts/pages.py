"""Synthetic contract pages with known ground truth, for the OCR example.

The pages are drawn with Pillow's bundled default font (Aileron, via
``ImageFont.load_default(size=...)``), so they look the same on any machine that has
only pip packages installed: no system fonts, no downloads. Everything is seeded, so
``generate_pages()`` returns identical pixels on every call with the same Pillow.

Images are ``uint8`` arrays of shape ``(H, W, 3)``. The pages are grey-scale drawn into
three equal channels, so RGB and BGR (what rapidocr assumes for arrays) are the same.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .fields import ContractFields

__all__ = ["PAGE_STYLES", "ContractFields", "Page", "generate_pages", "iban_check_digits"]

PAGE_STYLES: tuple[str, ...] = ("clean_large", "small_font", "rotated_noisy", "wide_spacing")

_COMPANIES = (
    "Nordwind Logistics GmbH",
    "Blue Harbor Trading Ltd",
    "Alpine Dairy Cooperative",
    "Meridian Software SA",
    "Hollis & Grant Partners LLP",
    "Kestrel Energy Services Inc",
    "Ostrava Steelworks AS",
    "Lumen Print House BV",
)
_CURRENCIES = ("EUR", "USD", "GBP", "CHF")
_BANK_CODES = ("37040044", "50010517", "10020030", "70150000")


@dataclass(frozen=True, slots=True)
class Page:
    name: str
    image: np.ndarray  # (H, W, 3) uint8
    fields: ContractFields
    lines: tuple[str, ...]  # the text lines drawn on the page, top to bottom


def iban_check_digits(country: str, bban: str) -> str:
    """ISO 13616 check digits: 98 - (BBAN + country + '00' as a number) mod 97."""
    rearranged = bban + country + "00"
    digits = "".join(str(int(ch, 36)) for ch in rearranged)
    return f"{98 - int(digits) % 97:02d}"


def _make_iban(rng: np.random.Generator) -> str:
    bank = _BANK_CODES[int(rng.integers(len(_BANK_CODES)))]
    account = "".join(str(int(d)) for d in rng.integers(0, 10, size=10))
    bban = bank + account
    return "DE" + iban_check_digits("DE", bban) + bban


def _required(value: str | None, name: str) -> str:
    if value is None:
        raise ValueError(f"a sample page needs {name}; got None")
    return value


def _group4(iban: str | None) -> str:
    iban = _required(iban, "an IBAN")
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


def _format_amount(value: float) -> str:
    return f"{value:,.2f}"


def _make_fields(rng: np.random.Generator) -> ContractFields:
    a, b = rng.choice(len(_COMPANIES), size=2, replace=False)
    party_a, party_b = _COMPANIES[int(a)], _COMPANIES[int(b)]
    currency = _CURRENCIES[int(rng.integers(len(_CURRENCIES)))]
    amount = _format_amount(float(rng.integers(500, 950_000)) + int(rng.integers(0, 100)) / 100)
    signed = dt.date(2025, 1, 1) + dt.timedelta(days=int(rng.integers(0, 330)))
    due = signed + dt.timedelta(days=int(rng.integers(7, 120)))
    local = party_a.split()[0].lower().replace("&", "")
    domain = party_a.split()[1].lower() + "-" + party_a.split()[0].lower()
    email = f"billing.{local}@{domain}.com"
    contract_no = f"C-{signed.year}-{int(rng.integers(1000, 9999))}"
    return ContractFields(
        contract_no=contract_no,
        parties=(party_a, party_b),
        amount=amount,
        currency=currency,
        signed=signed.isoformat(),
        due=due.isoformat(),
        iban=_make_iban(rng),
        email=email,
    )


def _eu_date(iso: str | None) -> str:
    return dt.date.fromisoformat(_required(iso, "a date")).strftime("%d.%m.%Y")


def _page_lines(f: ContractFields) -> tuple[str, ...]:
    return (
        "SERVICE AGREEMENT",
        f"Contract No. {f.contract_no}",
        f"Date of signature: {_eu_date(f.signed)}",
        f"Supplier: {f.parties[0]}",
        f"Customer: {f.parties[1]}",
        f"Total amount: {f.currency} {f.amount}",
        f"Payment due by: {_eu_date(f.due)}",
        f"IBAN: {_group4(f.iban)}",
        f"Contact: {f.email}",
        "Signed by both parties in two copies.",
    )


def _render(lines: tuple[str, ...], *, size: tuple[int, int], font_px: int, gap: float) -> Image.Image:
    font = ImageFont.load_default(size=font_px)
    img = Image.new("L", size, color=255)
    draw = ImageDraw.Draw(img)
    x, y = int(size[0] * 0.08), int(size[1] * 0.07)
    for i, line in enumerate(lines):
        title_font = ImageFont.load_default(size=int(font_px * 1.3)) if i == 0 else font
        draw.text((x, y), line, fill=0, font=title_font)
        y += int((font_px * 1.3 if i == 0 else font_px) * gap)
    return img


def _degrade(img: Image.Image, rng: np.random.Generator, *, angle: float) -> Image.Image:
    rotated = img.rotate(angle, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=255)
    blurred = rotated.filter(ImageFilter.GaussianBlur(radius=0.8))
    arr = np.asarray(blurred, dtype=np.float32)
    noisy = arr + rng.normal(0.0, 12.0, size=arr.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), mode="L")


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    gray = np.asarray(img, dtype=np.uint8)
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))


def generate_pages(seed: int = 7) -> list[Page]:
    """The fixed set of sample pages, one per entry of ``PAGE_STYLES``."""
    rng = np.random.default_rng(seed)
    pages: list[Page] = []
    for style in PAGE_STYLES:
        fields = _make_fields(rng)
        lines = _page_lines(fields)
        if style == "clean_large":
            img = _render(lines, size=(900, 1100), font_px=30, gap=1.9)
        elif style == "small_font":
            img = _render(lines, size=(900, 1100), font_px=18, gap=1.8)
        elif style == "rotated_noisy":
            img = _render(lines, size=(900, 1100), font_px=26, gap=2.0)
            img = _degrade(img, rng, angle=float(rng.uniform(2.0, 3.5)))
        else:  # wide_spacing
            img = _render(lines, size=(1000, 1300), font_px=24, gap=3.0)
        pages.append(Page(name=style, image=_to_rgb_array(img), fields=fields, lines=lines))
    return pages
