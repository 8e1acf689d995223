package wxpay

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Bill fuzzers. Seeds are the samples in testdata/bill; `make fuzz` (and
// .ci/fuzz.sh) runs every Fuzz function for a bounded time.

// billSeeds adds every sample bill of testdata/bill whose name starts with
// prefix.
func billSeeds(f *testing.F, prefix string) {
	names, err := filepath.Glob(filepath.Join("testdata", "bill", prefix+"*.csv"))
	if err != nil || len(names) == 0 {
		f.Fatalf("no seeds: %v", err)
	}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
}

// FuzzParseTradeBill feeds arbitrary input to the trade bill parser: it
// must never panic, every failure must wrap one of the bill sentinels, and
// whatever it accepts must be consistent (the summary equals the rows) and
// must survive a round trip: written back with TradeBillWriter it parses to
// the same rows and summary, and writing those again gives the same bytes.
func FuzzParseTradeBill(f *testing.F) {
	billSeeds(f, "trade_")
	f.Fuzz(func(t *testing.T, data []byte) {
		rows, sum, typ, err := parseAllTrade(bytes.NewReader(data), "")
		if err != nil {
			if !errors.Is(err, ErrBillLayout) && !errors.Is(err, ErrBillTruncated) &&
				!errors.Is(err, ErrBillMalformed) && !errors.Is(err, ErrBillSummary) {
				t.Fatalf("an error outside the bill sentinels: %v", err)
			}
			return
		}
		var check TradeBillSummary
		for i := range rows {
			if err := check.Add(&rows[i]); err != nil {
				t.Fatal(err)
			}
		}
		if check != sum || !typ.Valid() {
			t.Fatalf("accepted a summary %+v for rows adding up to %+v (type %q)", sum, check, typ)
		}
		first := writeTrade(t, typ, rows)
		rows2, sum2, typ2, err := parseAllTrade(bytes.NewReader(first), typ)
		if err != nil || sum2 != sum || typ2 != typ || len(rows2) != len(rows) {
			t.Fatalf("the written bill does not parse back: %v %+v", err, sum2)
		}
		if second := writeTrade(t, typ, rows2); !bytes.Equal(first, second) {
			t.Fatalf("writing is not stable:\n%q\n%q", first, second)
		}
	})
}

func writeTrade(t *testing.T, typ BillType, rows []TradeBillRow) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewTradeBillWriter(&buf, typ)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		if err := w.Write(&rows[i]); err != nil {
			t.Fatalf("a parsed row cannot be written: %v", err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzParseFundFlowBill is FuzzParseTradeBill for fund-flow bills.
func FuzzParseFundFlowBill(f *testing.F) {
	billSeeds(f, "fundflow_")
	f.Fuzz(func(t *testing.T, data []byte) {
		var rows []FundFlowRow
		sum, err := ParseFundFlowBill(bytes.NewReader(data), func(r *FundFlowRow) error {
			rows = append(rows, *r)
			return nil
		})
		if err != nil {
			if !errors.Is(err, ErrBillLayout) && !errors.Is(err, ErrBillTruncated) &&
				!errors.Is(err, ErrBillMalformed) && !errors.Is(err, ErrBillSummary) {
				t.Fatalf("an error outside the bill sentinels: %v", err)
			}
			return
		}
		var buf bytes.Buffer
		w, _ := NewFundFlowBillWriter(&buf)
		for i := range rows {
			if err := w.Write(&rows[i]); err != nil {
				t.Fatalf("a parsed row cannot be written: %v", err)
			}
		}
		if w.Summary() != sum {
			t.Fatalf("accepted a summary %+v for rows adding up to %+v", sum, w.Summary())
		}
		w.Close()
		sum2, err := ParseFundFlowBill(bytes.NewReader(buf.Bytes()), func(*FundFlowRow) error { return nil })
		if err != nil || sum2 != sum {
			t.Fatalf("the written bill does not parse back: %v", err)
		}
	})
}
