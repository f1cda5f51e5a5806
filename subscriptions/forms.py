from __future__ import annotations

import unicodedata
from typing import Any

from django import forms
from django.core.validators import validate_email
from django.utils.translation import gettext_lazy as _

from signals.models import FundList
from subscriptions.models import LANGUAGES


class EmailAddressField(forms.CharField):
    """An address as a mail server would take it, or a clear form error."""

    default_error_messages = {
        "invalid": _("Enter a valid email address."),
        "control": _("An email address cannot contain line breaks or control characters."),
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=254, strip=True, **kwargs)

    def to_python(self, value: Any) -> str:
        value = super().to_python(value)
        if any(unicodedata.category(c).startswith("C") for c in value):
            raise forms.ValidationError(self.error_messages["control"], code="control")
        # Stored lower-cased; checking the length after lower-casing matters
        # because some letters grow ("İ" becomes two characters).
        return value.lower()

    def validate(self, value: str) -> None:
        super().validate(value)
        if value:
            validate_email(value)
            # Django's pattern matches case-insensitively, which lets "ı" and "ſ"
            # pass as "I" and "S"; mail servers want an ASCII local part.
            local, _at, domain = value.rpartition("@")
            if not local.isascii():
                raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
            try:
                domain.encode("idna")  # what the mail server will be given
            except UnicodeError:
                raise forms.ValidationError(
                    self.error_messages["invalid"], code="invalid"
                ) from None


class FundListsField(forms.ModelMultipleChoiceField):
    """Fund lists by id; an id no database column can hold is a form error too."""

    def _check_values(self, value: Any) -> Any:
        for pk in value:
            text = str(pk)
            if not (text.isascii() and text.isdigit() and len(text) <= 18):
                raise forms.ValidationError(
                    self.error_messages["invalid_pk_value"],
                    code="invalid_pk_value",
                    params={"pk": pk},
                )
        return super()._check_values(value)  # type: ignore[misc]


class PreferencesForm(forms.Form):
    fund_lists = FundListsField(
        FundList.objects.all(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label=_("Fund lists"),
        help_text=_("None ticked means every list."),
    )
    actionable_only = forms.BooleanField(
        required=False, label=_("Only email me on days with a BUY or SELL in my lists")
    )
    language = forms.ChoiceField(choices=LANGUAGES, label=_("Language"))


class SubscribeForm(PreferencesForm):
    email = EmailAddressField(label=_("Email address"))
    # A field people never see; bots fill every field they find.
    website = forms.CharField(required=False, label=_("Leave this empty"))

    field_order = ["email", "fund_lists", "actionable_only", "language", "website"]

    def is_bot(self) -> bool:
        return bool(self.cleaned_data.get("website"))
