import re
from datetime import date, timedelta

import numpy as np
from django.test import SimpleTestCase

from signals import charts


def make_chart(days: int, **options) -> str:
    dates = np.array(
        [date(2023, 1, 2) + timedelta(days=i) for i in range(days)], dtype="datetime64[D]"
    )
    close = np.linspace(3.5, 4.2, days)
    series = [charts.Series("Close", "close", close)]
    markers = [charts.Marker(date(2023, 1, 3), 3.51, "BUY")]
    return charts.svg(dates, series, markers, title="Fund", **options)


def date_labels(svg: str) -> list[tuple[str, float, str, str]]:
    pattern = r'<text class="(axis date[^"]*)" x="([\d.]+)" y="[\d.]+" text-anchor="(\w+)">'
    found = re.findall(pattern + "([^<]*)</text>", svg)
    return [(css, float(x), anchor, text) for css, x, anchor, text in found]


class ChartTestCase(SimpleTestCase):
    def test_it_anchors_the_first_and_last_dates_to_the_edges(self):
        labels = date_labels(make_chart(250))
        self.assertEqual(len(labels), charts.DATE_TICKS)
        first, *middle, last = labels
        self.assertEqual((first[1], first[2], first[3]), (charts.LEFT, "start", "2023-01-02"))
        # The last date ends at the plot's right edge: it cannot run off the chart.
        self.assertEqual(
            (last[1], last[2], last[3]), (charts.WIDTH - charts.RIGHT, "end", "2023-09-08")
        )
        self.assertEqual([m[2] for m in middle], ["middle"] * 3)
        # Phones hide every other date (site.css): three remain, far apart.
        self.assertEqual([css for css, *_ in labels].count("axis date minor"), 2)
        self.assertNotIn("minor", first[0] + last[0])

    def test_it_writes_dates_with_the_label_it_is_given(self):
        svg = make_chart(60, day_label=lambda day: f"{day.year}年{day.month}月{day.day}日")
        self.assertEqual(date_labels(svg)[0][3], "2023年1月2日")
        self.assertIn("<title>BUY 2023年1月3日 3.510</title>", svg)

    def test_it_puts_price_labels_inside_the_plot(self):
        svg = make_chart(60)
        prices = re.findall(r'<text class="axis price" x="([\d.]+)"', svg)
        self.assertEqual(len(prices), 3)
        self.assertTrue(all(float(x) > charts.LEFT for x in prices))
        # Labels are drawn after the lines, so their halo keeps them readable.
        self.assertLess(svg.index('class="close"'), svg.index('class="axis price"'))

    def test_a_short_series_shows_only_its_first_and_last_dates(self):
        labels = date_labels(make_chart(3))
        self.assertEqual([(anchor, text) for _css, _x, anchor, text in labels],
                         [("start", "2023-01-02"), ("end", "2023-01-04")])  # fmt: skip
        self.assertEqual(make_chart(1), "")
