"""English: 8 Jun 2023, 18:42 (day before month, 24-hour clock, no US slashes)."""

from __future__ import annotations

DATE_FORMAT = "j M Y"  # 8 Jun 2023
TIME_FORMAT = "H:i"  # 18:42
DATETIME_FORMAT = "j M Y, H:i"  # 8 Jun 2023, 18:42
MONTH_DAY_FORMAT = "j M"  # 8 Jun
SHORT_DATE_FORMAT = "j M Y"
SHORT_DATETIME_FORMAT = "j M Y, H:i"
THOUSAND_SEPARATOR = ","
NUMBER_GROUPING = 3
