"""Build the bundled sample price data in signals/sample_data/.

The source is the raw (unadjusted) daily ETF data of the GitHub repository
chrisphoenixsoar/etf_rotation (branch master, commit 05f5dbc2, data/etf/<ts_code>.csv,
Apache-2.0), one file per fund with the columns
date,name,code,pre_close,open,high,low,close,vol,amount. A local copy lives in
../shared/data/etf/wind_raw_preclose/.

This script turns 16 of those funds into Tushare-shaped tables:

* fund_daily.csv  raw OHLC, vol in lots, amount in thousand CNY
* fund_adj.csv    backward cumulative adjustment factor, as Tushare fund_adj
* fund_basic.csv  names and first trading dates
* trade_cal.csv   SSE-style calendar from the days anything traded in the source folder

and writes SOURCE.md and LICENSE next to them. The output is sorted and uses fixed
float formats, so re-running it gives byte-identical files.

Usage: python scripts/build_sample_data.py [--source DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "etf" / "wind_raw_preclose"
DEFAULT_OUT = ROOT / "signals" / "sample_data"
LICENSE_TEXT = Path("/usr/share/common-licenses/Apache-2.0")

FUNDS = [
    "159915.SZ", "159920.SZ", "159941.SZ", "510050.SH", "510300.SH", "510500.SH",
    "511010.SH", "512010.SH", "512100.SH", "512690.SH", "512800.SH", "512880.SH",
    "513100.SH", "513500.SH", "518880.SH", "588000.SH",
]  # fmt: skip
PRICES = ["pre_close", "open", "high", "low", "close"]
DAILY_COLUMNS = ["ts_code", "trade_date", *PRICES, "change", "pct_chg", "vol", "amount"]
# Fixed decimals per output column.
DECIMALS = {
    **dict.fromkeys(PRICES, 3),
    "change": 3,
    "pct_chg": 4,
    "vol": 2,
    "amount": 3,
    "adj_factor": 3,
}
# Values checked against Tushare fund_adj.
EXPECTED_FACTORS = {("513100.SH", "20220114"): 5.002, ("510300.SH", "20121218"): 1.014}


def load_fund(path: Path) -> pd.DataFrame:
    """Read one source file and return its traded rows with an adj_factor column."""
    df = pd.read_csv(path)
    traded = df["vol"] > 0
    df = df.loc[traded.idxmax() :].reset_index(drop=True)  # drop pre-listing rows
    df[PRICES] = df[PRICES].round(3)
    # Ex-rights ratio: previous close over today's ex-rights reference price.
    ratio = (df["close"].shift() / df["pre_close"]).fillna(1.0)
    df["ratio"] = ratio
    df["adj_factor"] = ratio.cumprod().round(3)
    return df[df["vol"] > 0].reset_index(drop=True)  # drop suspension days


def events(df: pd.DataFrame) -> pd.DataFrame:
    """Rows where the ex-rights ratio is not 1 (dividend, split or merge)."""
    return df.loc[df["ratio"] != 1.0, ["date", "ratio", "adj_factor"]]


def to_fund_daily(df: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({"ts_code": df["code"], "trade_date": yyyymmdd(df["date"])})
    out[PRICES] = df[PRICES]
    out["change"] = (df["close"] - df["pre_close"]).round(3)
    out["pct_chg"] = (out["change"] / df["pre_close"] * 100).round(4)
    out["vol"] = df["vol"] / 100
    out["amount"] = df["amount"] / 1000
    return out


def yyyymmdd(dates: pd.Series) -> pd.Series:
    return pd.to_datetime(dates, format="%Y-%m-%d").dt.strftime("%Y%m%d")


def trade_calendar(source: Path) -> pd.DataFrame:
    """Every calendar day between the first and last day that anything traded."""
    open_days: set[pd.Timestamp] = set()
    for path in sorted(source.glob("*.csv")):
        df = pd.read_csv(path)
        if "vol" in df.columns:  # an ETF file
            open_days.update(pd.to_datetime(df.loc[df["vol"] > 0, "date"], format="%Y-%m-%d"))
        else:  # the CSI 300 index file, dates like 2005/1/4
            open_days.update(pd.to_datetime(df["date"], format="%Y/%m/%d"))
    days = pd.date_range(min(open_days), max(open_days), freq="D")
    is_open = days.isin(sorted(open_days))
    last_open = pd.Series(days.where(is_open)).ffill()
    cal = pd.DataFrame({"exchange": "SSE", "cal_date": days.strftime("%Y%m%d")})
    cal["is_open"] = is_open.astype(int)
    cal["pretrade_date"] = last_open.shift().dt.strftime("%Y%m%d").fillna("")
    return cal


def write_csv(df: pd.DataFrame, path: Path) -> None:
    df = df.copy()
    for col, places in DECIMALS.items():
        if col in df.columns:
            # "+ 0.0" turns -0.0 into 0.0 so no "-0.000" is written.
            df[col] = (df[col].round(places) + 0.0).map(f"{{:.{places}f}}".format)
    df.to_csv(path, index=False, lineterminator="\n", encoding="utf-8")


def kind(ratio: float) -> str:
    if ratio > 1.25:
        return "split"
    if ratio < 0.8:
        return "merge"
    return "cash dividend" if ratio > 1 else "unexplained"


def source_md(basic: pd.DataFrame, daily: pd.DataFrame, found: pd.DataFrame) -> str:
    dates = daily.groupby("ts_code")["trade_date"]
    first, last, rows = (
        dates.min().to_dict(),
        dates.max().to_dict(),
        dates.size().to_dict(),
    )
    fund_rows = "\n".join(
        f"| {code} | {name} | {first[code]} | {last[code]} | {rows[code]} |"
        for code, name in zip(basic["ts_code"], basic["name"], strict=True)
    )
    event_rows = "\n".join(
        f"| {e['ts_code']} | {e['trade_date']} | {e['ratio']:.4f} | "
        f"{e['adj_factor']:.3f} | {kind(e['ratio'])} |"
        for e in found.to_dict("records")
    )
    return f"""# Sample price data

These files are the offline price data the app uses when no Tushare token and no
`PRICE_CSV_DIR` are set. They hold daily bars of {len(basic)} Chinese exchange-traded
funds from each fund's first trading day to 2023-06-08, in the same layout as the
Tushare Pro tables `fund_daily`, `fund_adj`, `fund_basic` and `trade_cal`.

## Origin and licence

* Repository: `chrisphoenixsoar/etf_rotation` on GitHub, branch `master`,
  commit `05f5dbc275c38d1f9b6162f66292b82d5c2b4fcb`, files `data/etf/<ts_code>.csv`.
  The trading calendar was built from 32 ETF files of that folder and from
  `data/sh000300.csv` (CSI 300 index); only the prices of the funds below are shipped.
* Licence: Apache-2.0, from the repository's `LICENSE` file on branch `main`,
  commit `fb78c58a4f31dac9fe48c0963c9c4ffc1516855a`. A copy is in `LICENSE` here.
* The repository does not name the data vendor; the layout looks like a Wind export.
  The vendor's terms for the underlying quotes may still apply.

## What was changed

The source has raw (unadjusted) prices, volume in shares and amount in CNY, and its
`pre_close` is the exchange's ex-rights reference price. For each fund:

1. Rows before the first row with volume > 0 were dropped (pre-listing placeholders).
2. Prices were rounded to 3 decimals (the source has float noise such as 2.6210000000000004).
3. `adj_factor`: on each row after the first, the ratio previous close / `pre_close`
   (taken before suspension days are dropped) is 1 on ordinary days and marks a
   dividend, split or merge otherwise. The factor is 1.0 on the first day and the
   cumulative product of these ratios afterwards, rounded to 3 decimals like Tushare's
   `fund_adj` (for example 513100.SH gets 5.002 from 2022-01-14, as in Tushare).
   Forward-adjusted prices are `price * adj_factor / last adj_factor`.
4. Suspension days (volume empty or 0, flat prices) were dropped, as Tushare has no
   rows for them.
5. Units and columns follow Tushare:
   * `fund_daily.csv`: `ts_code,trade_date,pre_close,open,high,low,close,change,pct_chg,vol,amount`;
     `trade_date` is YYYYMMDD, `vol` is in lots of 100 shares (2 decimals), `amount` in
     thousand CNY (3 decimals, so whole CNY), `change = close - pre_close` (3 decimals),
     `pct_chg = change / pre_close * 100` (4 decimals).
   * `fund_adj.csv`: `ts_code,trade_date,adj_factor`, one row per `fund_daily` row.
   * `fund_basic.csv`: `ts_code,name,management,fund_type,list_date,delist_date,status,market`;
     `name` is the source file's fund name, `list_date` the first trading day,
     `status` L, `market` E; `management`, `fund_type` and `delist_date` are empty.
   * `trade_cal.csv`: `exchange,cal_date,is_open,pretrade_date` for every calendar day
     from the first to the last trading day in the source folder. A day is open when
     any source ETF traded (volume > 0) or the CSI 300 index has a row on it.
     `pretrade_date` is the previous open day. `exchange` is SSE for all rows.

`fund_daily.csv` and `fund_adj.csv` are sorted by `ts_code`, then `trade_date`;
`fund_basic.csv` by `ts_code`; `trade_cal.csv` by `cal_date`.

## Funds

| ts_code | name | first day | last day | rows |
|---|---|---|---|---|
{fund_rows}

## Adjustment events

Every day where previous close / `pre_close` (the ratio) is not 1. A ratio
above 1.25 is listed as a split, below 0.8 as a merge, from 1 to 1.25 as a cash
dividend; this rule is a guess from the prices alone. Notable cases:

* 512100.SH: share merge on 2022-09-05 (price about x2.76); 2022-09-02 was suspended.
* 513100.SH: 1-to-5 split on 2022-01-14; 2022-01-13 was suspended.
* 510300.SH: yearly cash dividends.
* 512690.SH, 2021-12-31: ratio 1.36 with no suspension; not checked whether this was a
  split or a large cash distribution.
* 510050.SH, 2013-01-08: `pre_close` 1.876 against a previous close of 1.875, probably a
  slip in the source; the factor is kept as computed (ratio 0.9995).

| ts_code | ex-date | ratio | adj_factor | kind |
|---|---|---|---|---|
{event_rows}

## Rebuilding

From the project root:

    python scripts/build_sample_data.py [--source DIR] [--out DIR]

`--source` defaults to `../shared/data/etf/wind_raw_preclose` (a copy of the files named
above) and `--out` to `signals/sample_data`. The output is byte-identical on re-runs.
"""


def require(ok: bool, message: str) -> None:
    if not ok:
        raise SystemExit(f"check failed: {message}")


def check(out: Path) -> None:
    """Read the written files back and check them; exit with an error on any problem."""
    daily = pd.read_csv(out / "fund_daily.csv", dtype={"trade_date": str})
    adj = pd.read_csv(out / "fund_adj.csv", dtype={"trade_date": str})
    keys = ["ts_code", "trade_date"]
    require(not daily.duplicated(keys).any(), "duplicate (ts_code, trade_date)")
    require(daily[keys].equals(adj[keys]), "fund_adj rows differ from fund_daily rows")
    require(bool(adj["adj_factor"].notna().all()), "missing adj_factor")
    factors = adj.set_index(keys)["adj_factor"]
    for key, expected in EXPECTED_FACTORS.items():
        require(factors[key] == expected, f"{key}: {factors[key]} != {expected}")
        print(f"adj_factor {key[0]} {key[1]} = {factors[key]:.3f} (Tushare {expected})")
    # Forward-adjusted close must not jump by more than 20% on any event day.
    df = daily.merge(adj, on=keys)
    for code, g in df.groupby("ts_code"):
        qfq = g["close"] * g["adj_factor"] / g["adj_factor"].iloc[-1]
        move = (qfq / qfq.shift() - 1).abs()
        on_events = move[g["adj_factor"].diff().fillna(0) != 0]
        worst = on_events.max() if len(on_events) else 0.0
        require(worst < 0.2, f"{code}: qfq close jumps {worst:.1%} on an event day")
        print(f"{code}: {len(g)} rows, largest qfq move on an event day {worst:.2%}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    frames = {code: load_fund(args.source / f"{code}.csv") for code in FUNDS}
    daily = pd.concat([to_fund_daily(df) for df in frames.values()], ignore_index=True)
    adj = pd.DataFrame(
        {
            "ts_code": daily["ts_code"],
            "trade_date": daily["trade_date"],
            "adj_factor": pd.concat([df["adj_factor"] for df in frames.values()]).to_numpy(),
        }
    )
    basic = pd.DataFrame(
        {
            "ts_code": FUNDS,
            "name": [frames[c]["name"].iloc[0] for c in FUNDS],
            "management": "",
            "fund_type": "",
            "list_date": [yyyymmdd(frames[c]["date"]).iloc[0] for c in FUNDS],
            "delist_date": "",
            "status": "L",
            "market": "E",
        }
    )
    found = pd.concat(
        [events(df).assign(ts_code=code) for code, df in frames.items()],
        ignore_index=True,
    )
    found["trade_date"] = yyyymmdd(found["date"])

    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(daily[DAILY_COLUMNS], args.out / "fund_daily.csv")
    write_csv(adj, args.out / "fund_adj.csv")
    write_csv(basic, args.out / "fund_basic.csv")
    write_csv(trade_calendar(args.source), args.out / "trade_cal.csv")
    (args.out / "SOURCE.md").write_text(source_md(basic, daily, found), encoding="utf-8")
    shutil.copyfile(LICENSE_TEXT, args.out / "LICENSE")
    check(args.out)
    print(f"wrote {len(daily)} rows of {len(FUNDS)} funds to {args.out}")


if __name__ == "__main__":
    main()
