from datetime import date

from django.core.management.base import CommandError

from signals.models import Fund, FundListItem
from tests.base import TushareTestCase, make_list, run_command


class ImportFundsTestCase(TushareTestCase):
    def write(self, text: str):
        path = self.tmp / "funds.csv"
        path.write_text(text, encoding="utf-8")
        return path

    def test_it_imports_every_exchange_traded_fund_of_the_provider(self):
        out = run_command("import_funds")
        self.assertIn("13 funds created, 3 updated", out)
        self.assertEqual(Fund.objects.count(), 16)
        gold = Fund.objects.get(ts_code="518880.SH")
        self.assertEqual((gold.name, gold.exchange), ("华安黄金易(ETF)", "SH"))
        self.assertEqual(gold.list_date, date(2013, 7, 29))
        self.assertTrue(gold.active)
        self.assertEqual(self.server.calls[0].params["market"], "E")

    def test_it_imports_a_csv_into_a_list(self):
        path = self.write("code,name\n518880.SH,黄金ETF\n159915.sz,创业板ETF\n")
        gold_list = make_list("gold", [])
        out = run_command("import_funds", csv=path, list="gold")
        self.assertIn("2 funds created, 0 updated, 2 added to gold", out)
        self.assertEqual(
            list(gold_list.items.values_list("fund__ts_code", flat=True)),
            ["518880.SH", "159915.SZ"],
        )
        self.assertEqual(Fund.objects.get(ts_code="518880.SH").name, "黄金ETF")
        run_command("import_funds", csv=path, list="gold")  # idempotent
        self.assertEqual(FundListItem.objects.filter(fund_list=gold_list).count(), 2)

    def test_bad_lines_are_reported_with_their_numbers_and_nothing_is_imported(self):
        path = self.write(
            "518880.SH,黄金ETF\n51888,short code\n159915.SZ\n\n510500.SH,\n518880.SH,again\n"
        )
        with self.assertRaisesMessage(CommandError, "nothing imported: 4 problem(s)"):
            run_command("import_funds", csv=path)
        self.assertEqual(Fund.objects.count(), 3)

    def test_each_problem_names_its_line(self):
        from signals.funds import ImportFailed, read_fund_csv

        path = self.write(
            "518880.SH,黄金ETF\n51888,short code\n159915.SZ\n\n510500.SH,\n518880.SH,x\n"
        )
        with self.assertRaises(ImportFailed) as caught:
            read_fund_csv(path)
        self.assertEqual(
            caught.exception.problems,
            [
                "line 2: '51888' is not a code like 510300.SH",
                "line 3: expected 2 columns (code,name), found 1",
                "line 5: 510500.SH has no name",
                "line 6: 518880.SH already appears on line 1",
            ],
        )

    def test_an_unknown_code_imports_nothing(self):
        path = self.write("518880.SH,黄金ETF\n159001.SZ,货币ETF\n")
        with self.assertRaisesMessage(CommandError, "nothing imported: 1 problem(s)"):
            run_command("import_funds", csv=path)
        self.assertFalse(Fund.objects.filter(ts_code="518880.SH").exists())

    def test_an_unreadable_file_is_a_clear_error(self):
        with self.assertRaisesMessage(CommandError, "nothing imported"):
            run_command("import_funds", csv=self.tmp / "missing.csv")
        path = self.tmp / "binary.csv"
        path.write_bytes(b"\xff\xfe\x00bad")
        with self.assertRaisesMessage(CommandError, "nothing imported"):
            run_command("import_funds", csv=path)

    def test_an_unknown_list_imports_nothing(self):
        path = self.write("518880.SH,黄金ETF\n")
        with self.assertRaisesMessage(CommandError, "nothing imported"):
            run_command("import_funds", csv=path, list="nope")
        self.assertFalse(Fund.objects.filter(ts_code="518880.SH").exists())
