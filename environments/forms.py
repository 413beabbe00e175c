import datetime
import ipaddress
from decimal import Decimal

from django import forms
from django.conf import settings
from django.core.validators import MaxValueValidator, RegexValidator
from django.db.models import Q
from django.utils import timezone

from environments.models import (
    ACCESS_KINDS,
    MAINTAIN_KINDS,
    ROLE_KINDS,
    WINDOW_KINDS,
    AccessLevel,
    OperationKind,
    Outcome,
    check_period,
)
from environments.refusals import OperationRefused

REASON_MAX_LENGTH = 500
REASON_REQUIRED = "Give a reason: it is kept in the environment history."


def reason_field():
    """Everything a person starts (every Maintain action, every access request) says
    why: the history is what staff review. Ending access early needs no reason."""
    return forms.CharField(
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why: kept in the environment history.",
        error_messages={"required": REASON_REQUIRED},
    )


class MaintainForm(forms.Form):
    """Confirm step of a Maintain action: the reason, for the history."""

    reason = reason_field()

    def __init__(self, *args, environment, **kwargs):
        self.environment = environment
        super().__init__(*args, **kwargs)


class RestartServiceForm(MaintainForm):
    service = forms.ChoiceField(
        label="Service to restart",
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


#: What the history pages show, by the Type column: the global page shows Maintain
#: operations unless asked for more, so that role changes do not bury them.
HISTORY_TYPES = {
    "maintain": ("Maintain operations", MAINTAIN_KINDS),
    "access": ("Access", ACCESS_KINDS),
    "roles": ("Roles", ROLE_KINDS),
    "windows": ("Maintenance windows", WINDOW_KINDS),
    "all": ("All activity", None),
}


class HistoryFilterForm(forms.Form):
    """The history pages' filters. The template writes their inputs itself (no widget
    templates: the history page is asked for often)."""

    type = forms.ChoiceField(
        required=False, label="Show", choices=[(k, v[0]) for k, v in HISTORY_TYPES.items()]
    )
    kind = forms.ChoiceField(
        required=False, label="Activity", choices=[("", "Any activity")] + OperationKind.choices
    )
    outcome = forms.ChoiceField(required=False, choices=[("", "Any outcome")] + Outcome.choices)
    user = forms.CharField(required=False, max_length=150, label="Requested by")
    environment = forms.CharField(required=False, max_length=100)
    since = forms.DateField(required=False, label="From")
    until = forms.DateField(required=False, label="To")

    def __init__(self, data, *, default_type="all"):
        if not data.get("type"):
            data = data.copy()
            data["type"] = default_type
        super().__init__(data)
        self.default_type = default_type

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

    @property
    def narrowed(self):
        """Whether any filter narrows the history beyond the page's default."""
        data = self.cleaned_data
        return data["type"] != self.default_type or any(
            data[name] for name in ("kind", "outcome", "user", "environment", "since", "until")
        )

    def filter(self, queryset):
        """The operations matching the filters; call only when the form is valid."""
        data = self.cleaned_data
        kinds = HISTORY_TYPES[data["type"]][1]
        if kinds is not None:
            queryset = queryset.filter(kind__in=kinds)
        if data["kind"]:
            queryset = queryset.filter(kind=data["kind"])
        if data["outcome"]:
            queryset = queryset.filter(outcome=data["outcome"])
        if data["user"]:  # part of a name, in any case
            queryset = queryset.filter(requested_by__username__icontains=data["user"])
        if data["environment"]:
            name = data["environment"]
            queryset = queryset.filter(
                Q(environment__name__icontains=name) | Q(environment__slug__icontains=name)
            )
        # Whole days in the viewer's time zone, as bounds the started_at index can use.
        if data["since"]:
            queryset = queryset.filter(started_at__gte=_start_of(data["since"]))
        if data["until"]:
            next_day = data["until"] + datetime.timedelta(days=1)
            queryset = queryset.filter(started_at__lt=_start_of(next_day))
        return queryset


def _start_of(day):
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))


def access_hours_field():
    return forms.FloatField(
        label="Hours",
        required=False,
        min_value=0.1,
        max_value=settings.ACCESS_MAX_HOURS,
        help_text=(
            f"Default {settings.ACCESS_DEFAULT_HOURS:g}, at most {settings.ACCESS_MAX_HOURS:g}."
        ),
        error_messages={
            "max_value": f"Access lasts at most {settings.ACCESS_MAX_HOURS:g} hours.",
            "min_value": "Enter at least 0.1 hours.",
        },
    )


IPV4_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
#: IPv6 ranges that stand for IPv4 addresses through a translator: a rule on them would
#: escape the IPv4 checks.
IPV6_TRANSLATED = (
    ipaddress.ip_network("::/96"),  # IPv4-compatible (deprecated)
    ipaddress.ip_network("64:ff9b::/96"),  # NAT64, well-known prefix
    ipaddress.ip_network("64:ff9b:1::/48"),  # NAT64, local use
    ipaddress.ip_network("2002::/16"),  # 6to4
)


def parse_access_range(value):
    """The normalised network of an IP address or CIDR range, or a clear refusal."""
    value = value.strip()
    if value in ("*", "any", "all"):
        raise forms.ValidationError(
            f"'{value}' would let every address reach the database. Enter your IP address "
            "or a small range."
        )
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise forms.ValidationError(
            "Enter an IP address (203.0.113.7) or a CIDR range (203.0.113.0/24)."
        ) from None
    if network.version == 6 and network.subnet_of(IPV4_MAPPED):
        # ::ffff:a.b.c.d/n is an IPv4 range written as IPv6: judge it as the IPv4 range.
        network = ipaddress.ip_network(
            (int(network.network_address) & 0xFFFFFFFF, network.prefixlen - 96)
        )
    limit = (
        settings.ACCESS_MAX_PREFIX_IPV4 if network.version == 4 else settings.ACCESS_MAX_PREFIX_IPV6
    )
    if network.prefixlen == 0:
        raise forms.ValidationError(f"{network} would let the whole internet reach the database.")
    if network.prefixlen < limit:
        raise forms.ValidationError(
            f"{network} is wider than /{limit}, the widest range allowed for IPv{network.version}."
        )
    for test, what in (
        ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
        ("is_unspecified", "the unspecified address"),
    ):
        if getattr(network, test) or getattr(network.network_address, test):
            raise forms.ValidationError(f"{network} is {what}, which cannot be given access.")
    if network.version == 6 and any(network.overlaps(n) for n in IPV6_TRANSLATED):
        raise forms.ValidationError(
            f"{network} is an address translation range (IPv4-compatible or NAT64); "
            "enter the IPv4 address itself."
        )
    return str(network)


class EnableAccessForm(forms.Form):
    name = forms.CharField(
        label="Rule name",
        max_length=64,
        validators=[
            RegexValidator(
                r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$",
                "Use letters, digits, spaces, dots, dashes and underscores.",
            )
        ],
    )
    address = forms.CharField(label="IP address or CIDR range", max_length=64)
    reason = reason_field()
    hours = access_hours_field()

    def __init__(self, *args, environment, **kwargs):
        self.environment = environment
        super().__init__(*args, **kwargs)

    def clean_address(self):
        return parse_access_range(self.cleaned_data["address"])


class RequestAccessForm(forms.Form):
    level = forms.ChoiceField(
        label="Access level",
        choices=AccessLevel.choices,
        widget=forms.RadioSelect,
        error_messages={"required": "Choose Read or Read-write access."},
    )
    reason = reason_field()
    hours = access_hours_field()

    def __init__(self, *args, environment, **kwargs):
        self.environment = environment
        super().__init__(*args, **kwargs)


LOCAL_INPUT = "%Y-%m-%dT%H:%M"


class LocalDateTimeInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, **kwargs):
        super().__init__(format=LOCAL_INPUT, **kwargs)


class ScheduleWindowForm(forms.Form):
    starts_at = forms.DateTimeField(label="Start", widget=LocalDateTimeInput())
    ends_at = forms.DateTimeField(label="End", widget=LocalDateTimeInput())
    reason = reason_field()
    notify_users = forms.BooleanField(
        required=False,
        initial=True,
        label="Notify the environment's users",
        help_text="By mail, before the window and when maintenance mode turns on and off. "
        "The project's owners and environment managers are always told.",
    )

    def __init__(self, *args, now=None, **kwargs):
        self.now = now or timezone.now()
        super().__init__(*args, **kwargs)
        zone = timezone.get_current_timezone_name()
        for name in ("starts_at", "ends_at"):
            self.fields[name].help_text = f"In your time zone, {zone}."
        if not self.is_bound:
            # The next full hour but one, for an hour: tonight's slot is a click away.
            local = timezone.localtime(self.now).replace(minute=0, second=0, microsecond=0)
            start = local + datetime.timedelta(hours=2)
            self.initial.setdefault("starts_at", start)
            self.initial.setdefault("ends_at", start + datetime.timedelta(hours=1))

    def clean(self):
        cleaned = super().clean()
        starts_at, ends_at = cleaned.get("starts_at"), cleaned.get("ends_at")
        if starts_at and ends_at:
            try:
                check_period(starts_at, ends_at, self.now)
            except OperationRefused as refused:
                raise forms.ValidationError(refused.message) from None
        return cleaned


class ScheduleOrStartWindowForm(ScheduleWindowForm):
    """The page's form: a window at a set time, or one that starts now for some hours
    (windows.start_now, a path of its own: a scheduled start still lies ahead)."""

    LATER, NOW = "later", "now"
    start = forms.ChoiceField(
        label="When",
        choices=[(LATER, "At the start and end below"), (NOW, "Start now, for N hours")],
        widget=forms.RadioSelect,
        initial=LATER,
        required=False,  # left out: at a set time, as before Start now was offered
    )
    hours = forms.DecimalField(
        label="Hours, when it starts now",
        required=False,
        min_value=Decimal("0.25"),
        decimal_places=2,
        initial=2,
    )
    field_order = ["start", "hours", "starts_at", "ends_at", "reason", "notify_users"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["hours"].validators.append(MaxValueValidator(settings.WINDOW_MAX_HOURS))
        if self.data.get("start") == self.NOW:
            for name in ("starts_at", "ends_at"):
                self.fields[name].required = False

    @property
    def starts_now(self):
        return self.cleaned_data.get("start") == self.NOW

    def clean(self):
        if self.cleaned_data.get("start") != self.NOW:
            return super().clean()
        if self.cleaned_data.get("hours") is None and "hours" not in self.errors:
            self.add_error("hours", "Say for how many hours maintenance mode stays on.")
        return self.cleaned_data


class CancelWindowForm(forms.Form):
    """Cancelling a window says why, as every action does: the history keeps it."""

    reason = reason_field()
