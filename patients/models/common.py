"""The models' shared field shapes: decimal sizes for volumes, doses, concentrations and rates,
and the free-text limits the forms, the API and the services apply too."""

from django.core.validators import MaxLengthValidator

VOLUME = {"max_digits": 6, "decimal_places": 2}  # mL, up to 9999.99
DOSE = {"max_digits": 8, "decimal_places": 2}  # mcg/day
CONCENTRATION = {"max_digits": 8, "decimal_places": 2}  # mcg/mL
RATE = {"max_digits": 8, "decimal_places": 4}  # mL/day

# Free text has a maximum length (issue 9, item 10: a 100,000-character note stretched the pump
# page). A validator, not a column length: text already stored is never truncated; the forms, the
# API and the services refuse longer input on the field.
NOTE_MAX_CHARS = 2000
REASON_MAX_CHARS = 500
NOTE = {"blank": True, "validators": [MaxLengthValidator(NOTE_MAX_CHARS)]}
REASON = {"blank": True, "validators": [MaxLengthValidator(REASON_MAX_CHARS)]}
