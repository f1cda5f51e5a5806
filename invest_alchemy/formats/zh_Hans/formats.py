"""Simplified Chinese: 2023年6月8日 18:42; large numbers grouped in thousands.

Django's own zh_Hans formats write no thousands separator (and would group by
four); Chinese financial figures are written 1,234,567, as here.
"""

from __future__ import annotations

DATE_FORMAT = "Y年n月j日"  # 2023年6月8日
TIME_FORMAT = "H:i"  # 18:42
DATETIME_FORMAT = "Y年n月j日 H:i"  # 2023年6月8日 18:42
MONTH_DAY_FORMAT = "n月j日"  # 6月8日 (Django's own pads the month: 06月8日)
SHORT_DATE_FORMAT = "Y年n月j日"
SHORT_DATETIME_FORMAT = "Y年n月j日 H:i"
THOUSAND_SEPARATOR = ","
NUMBER_GROUPING = 3
