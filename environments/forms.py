import datetime

from django import forms
from django.utils import timezone

from environments.models import OperationKind, Outcome

REASON_MAX_LENGTH = 500


class MaintainForm(forms.Form):
    """Confirm step of a Maintain action: an optional reason for the history."""

    reason = forms.CharField(
        required=False,
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Optional; kept in the environment history.",
    )

    def __init__(self, *args, environment, **kwargs):
        self.environment = environment
        super().__init__(*args, **kwargs)


class RestartServiceForm(MaintainForm):
    service = forms.ChoiceField(
        widget=forms.RadioSelect,
        error_messages={
            "required": "Choose the service to restart.",
            "invalid_choice": "Choose one of this environment's services: AOS, DIXF or MR.",
        },
    )

    field_order = ["service", "reason"]

    def __init__(self, *args, environment, services, **kwargs):
        super().__init__(*args, environment=environment, **kwargs)
        self.fields["service"].choices = [(s.kind, s.get_kind_display()) for s in services]


class HistoryFilterForm(forms.Form):
    kind = forms.ChoiceField(required=False, choices=[("", "Any activity")] + OperationKind.choices)
    outcome = forms.ChoiceField(required=False, choices=[("", "Any outcome")] + Outcome.choices)
    user = forms.CharField(required=False, max_length=150, label="Requested by")
    since = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        for name, day in (("since", since), ("until", until)):
            if day and not 1970 <= day.year <= 9998:
                self.add_error(name, "Enter a date between 1970 and 9998.")
                return cleaned
        if since and until and since > until:
            raise forms.ValidationError("The From date must not be after the To date.")
        return cleaned

    def filter(self, queryset):
        """The operations matching the filters; call only when the form is valid."""
        data = self.cleaned_data
        if data["kind"]:
            queryset = queryset.filter(kind=data["kind"])
        if data["outcome"]:
            queryset = queryset.filter(outcome=data["outcome"])
        if data["user"]:
            queryset = queryset.filter(requested_by__username=data["user"])
        # Whole days in the portal's time zone, as bounds the started_at index can use.
        if data["since"]:
            queryset = queryset.filter(started_at__gte=_start_of(data["since"]))
        if data["until"]:
            next_day = data["until"] + datetime.timedelta(days=1)
            queryset = queryset.filter(started_at__lt=_start_of(next_day))
        return queryset


def _start_of(day):
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))
