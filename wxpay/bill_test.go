package wxpay

import (
	"bytes"
	"crypto/sha1" //nolint:gosec // WeChat's bill digest
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func readBillSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "bill", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func bj(s string) time.Time {
	t, err := time.ParseInLocation(BillTimeLayout, s, BillLocation)
	if err != nil {
		panic(err)
	}
	return t
}

// parseAllTrade parses a whole trade bill into a slice.
func parseAllTrade(r io.Reader, want BillType) ([]TradeBillRow, TradeBillSummary, BillType, error) {
	var rows []TradeBillRow
	sum, typ, err := ParseTradeBill(r, want, func(row *TradeBillRow) error {
		rows = append(rows, *row)
		return nil
	})
	return rows, sum, typ, err
}

func TestParseTradeBillKnownAnswers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		file  string
		typ   BillType
		sum   TradeBillSummary
		first TradeBillRow
	}{
		{"trade_all_sdk.csv", BillTypeAll,
			TradeBillSummary{Count: 3, SettlementTotal: 3, Total: 3},
			TradeBillRow{
				TradeTime: bj("2021-01-28 17:07:11"), AppID: "wx81be3101902f7cb2", MchID: "1601959334",
				TransactionID: "4200000925202101284997714292", OutTradeNo: "S20210128170702357723",
				OpenID: "ofyak5qR_1wYsC99CsWA6R9MJazA", TradeType: "NATIVE", TradeState: "SUCCESS", BankType: "OTHERS",
				Currency: "CNY", SettlementTotal: 1, Description: "for testing", Attach: "cipher code", RatePPM: 10000, Total: 1,
			}},
		{"trade_refund_sdk.csv", BillTypeRefund,
			TradeBillSummary{Count: 2, Refund: 2, RefundRequested: 2},
			TradeBillRow{
				TradeTime: bj("2021-01-24 16:16:25"), AppID: "wx81be3101902f7cb2", MchID: "1601959334",
				TransactionID: "4200000844202101245866928772", OutTradeNo: "S20210124161554311546",
				OpenID: "ofyak5qR_1wYsC99CsWA6R9MJazA", TradeType: "NATIVE", TradeState: "REFUND", BankType: "OTHERS",
				Currency: "CNY", RefundApplyTime: bj("2021-02-01 14:33:21"), RefundSuccessTime: bj("2021-02-01 14:33:24"),
				RefundID: "50300807172021020106006664916", OutRefundNo: "S20210201143320649393", Refund: 1,
				RefundType: "ORIGINAL", RefundStatus: "SUCCESS", Description: "for testing", Attach: "cipher code",
				RatePPM: 10000, RefundRequested: 1,
			}},
		{"trade_success_sdk.csv", BillTypeSuccess,
			TradeBillSummary{Count: 1, SettlementTotal: 1, Total: 1},
			TradeBillRow{
				TradeTime: bj("2021-02-01 14:38:45"), AppID: "wx81be3101902f7cb2", MchID: "1601959334",
				TransactionID: "4200000922202102014836880592", OutTradeNo: "S20210201143829466741",
				OpenID: "ofyak5lCyFIsihOYEX0Zx9smR0g0", TradeType: "NATIVE", TradeState: "SUCCESS", BankType: "OTHERS",
				Currency: "CNY", SettlementTotal: 1, Description: "for testing", Attach: "cipher code", RatePPM: 10000, Total: 1,
			}},
		{"trade_success_apiv2.csv", BillTypeSuccess,
			TradeBillSummary{Count: 5, SettlementTotal: 5, Total: 5},
			TradeBillRow{
				TradeTime: bj("2019-11-04 18:52:59"), AppID: "wxdf9968af00e458e0", MchID: "1393091302",
				TransactionID: "4200000422201911044383886395", OutTradeNo: "1572864513058gxaivpd",
				OpenID: "o1gswuOe-4_AZqm1gipKyZGU2iZ8", TradeType: "NATIVE", TradeState: "SUCCESS", BankType: "CFT",
				Currency: "CNY", SettlementTotal: 1, Description: "长春工业大学收费", RatePPM: 6000, Total: 1,
			}},
	} {
		t.Run(tc.file+" parses to its known rows and summary", func(t *testing.T) {
			t.Parallel()
			rows, sum, typ, err := parseAllTrade(bytes.NewReader(readBillSample(t, tc.file)), "")
			if err != nil {
				t.Fatal(err)
			}
			if typ != tc.typ || sum != tc.sum || int64(len(rows)) != sum.Count {
				t.Fatalf("type %s summary %+v rows %d, want %s %+v", typ, sum, len(rows), tc.typ, tc.sum)
			}
			if rows[0] != tc.first {
				t.Fatalf("first row\n got %+v\nwant %+v", rows[0], tc.first)
			}
			// The same bill read one byte at a time parses the same.
			again, sum2, _, err := parseAllTrade(iotest.OneByteReader(bytes.NewReader(readBillSample(t, tc.file))), tc.typ)
			if err != nil || sum2 != sum || len(again) != len(rows) || again[len(again)-1] != rows[len(rows)-1] {
				t.Fatalf("byte by byte: %v %+v", err, sum2)
			}
		})
	}
}

func TestTradeBillWriterReproducesTheSamples(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"trade_all_sdk.csv", "trade_refund_sdk.csv", "trade_success_sdk.csv", "trade_success_apiv2.csv"} {
		t.Run(file+" is written back byte for byte (CRLF, no byte order mark)", func(t *testing.T) {
			t.Parallel()
			in := readBillSample(t, file)
			rows, sum, typ, err := parseAllTrade(bytes.NewReader(in), "")
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			w, err := NewTradeBillWriter(&out, typ)
			if err != nil {
				t.Fatal(err)
			}
			for i := range rows {
				if err := w.Write(&rows[i]); err != nil {
					t.Fatal(err)
				}
			}
			if w.Summary() != sum {
				t.Fatalf("writer summary %+v, want %+v", w.Summary(), sum)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			want := strings.TrimPrefix(string(in), bom)
			want = strings.ReplaceAll(strings.ReplaceAll(want, "\r\n", "\n"), "\n", "\r\n")
			if !strings.HasSuffix(want, "\r\n") {
				want += "\r\n"
			}
			if out.String() != want {
				t.Fatalf("written\n%q\nwant\n%q", out.String(), want)
			}
			if !bytes.HasPrefix(out.Bytes()[w.HeaderLen():], []byte("`")) {
				t.Fatal("HeaderLen does not point at the first row")
			}
		})
	}
}

func TestParseFundFlowBillKnownAnswers(t *testing.T) {
	t.Parallel()
	var rows []FundFlowRow
	sum, err := ParseFundFlowBill(bytes.NewReader(readBillSample(t, "fundflow_sdk.csv")), func(r *FundFlowRow) error {
		rows = append(rows, *r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := FundFlowRow{
		Time: bj("2021-02-01 13:54:01"), BusinessID: "50300806962021020105978994968", FlowID: "4200000920202101197964319284",
		BusinessName: "退款", BusinessType: "退款", Direction: FundExpense, Amount: 1, Balance: 22,
		Applicant: "1601959334API", Note: "退款总金额0.01元;含手续费0.00元", VoucherID: "S20210201135356381941",
	}
	if sum != (FundFlowSummary{Count: 2, ExpenseCount: 2, Expense: 2}) || len(rows) != 2 || rows[0] != want {
		t.Fatalf("summary %+v rows %+v", sum, rows)
	}
	var out bytes.Buffer
	w, _ := NewFundFlowBillWriter(&out)
	for i := range rows {
		if err := w.Write(&rows[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if want := strings.ReplaceAll(string(readBillSample(t, "fundflow_sdk.csv")), "\n", "\r\n"); out.String() != want {
		t.Fatalf("written\n%q\nwant\n%q", out.String(), want)
	}
}

func TestBillExcerptsFailTheirSummaries(t *testing.T) {
	t.Parallel()
	for _, file := range []string{"trade_all_wxjava_excerpt.csv", "trade_refund_wxjava_excerpt.csv"} {
		if _, _, _, err := parseAllTrade(bytes.NewReader(readBillSample(t, file)), ""); !errors.Is(err, ErrBillSummary) {
			t.Errorf("%s: %v, want ErrBillSummary", file, err)
		}
	}
	for _, file := range []string{"fundflow_sdk_excerpt.csv", "fundflow_apiv2_doc.csv"} {
		if _, err := ParseFundFlowBill(bytes.NewReader(readBillSample(t, file)), func(*FundFlowRow) error { return nil }); !errors.Is(err, ErrBillSummary) {
			t.Errorf("%s: %v, want ErrBillSummary", file, err)
		}
	}
	// The WxJava REFUND excerpt's summary parses with its negative fee.
	p := NewTradeBillReader(bytes.NewReader(readBillSample(t, "trade_refund_wxjava_excerpt.csv")), BillTypeRefund)
	for p.Next() {
		if p.Row().FeeMilliFen != 0 || p.Row().RefundRequested != 1 {
			t.Fatalf("%+v", p.Row())
		}
	}
	if !strings.Contains(p.Err().Error(), "FeeMilliFen:-2000") || p.Summary() != (TradeBillSummary{}) {
		t.Fatalf("%v %+v", p.Err(), p.Summary())
	}
}

// sampleAll is trade_all_sdk.csv's lines, for building broken variants.
func sampleAllLines(t testing.TB) []string {
	return strings.Split(strings.TrimSuffix(string(readBillSample(t, "trade_all_sdk.csv")), "\n"), "\n")
}

func TestParseTradeBillRejects(t *testing.T) {
	t.Parallel()
	l := sampleAllLines(t) // header, 3 rows, summary header, summary row
	join := func(lines ...string) string { return strings.Join(lines, "\n") + "\n" }
	row := func(i int, from, to string) string { return strings.Replace(l[i], from, to, 1) }
	for _, tc := range []struct {
		name string
		in   string
		want BillType
		err  error
	}{
		{"an empty input is truncated", "", "", ErrBillTruncated},
		{"blank lines only are truncated", "\r\n\n", "", ErrBillTruncated},
		{"a header alone is truncated", join(l[0]), "", ErrBillTruncated},
		{"rows without a summary are truncated", join(l[:4]...), "", ErrBillTruncated},
		{"a summary header without its row is truncated", join(l[:5]...), "", ErrBillTruncated},
		{"a file cut inside its last number is malformed", strings.Join(l, "\n")[:len(strings.Join(l, "\n"))-1], "", ErrBillMalformed},
		{"a file cut inside a row is malformed", join(l[:2]...) + l[2][:40], "", ErrBillMalformed},
		{"a data row first is no layout", join(l[1:]...), "", ErrBillLayout},
		{"an unknown column", join(append([]string{strings.Replace(l[0], "费率备注", "备注", 1)}, l[1:]...)...), "", ErrBillLayout},
		{"a missing column", join(append([]string{strings.TrimSuffix(l[0], ",费率备注")}, l[1:]...)...), "", ErrBillLayout},
		{"a repeated column", join(append([]string{strings.Replace(l[0], "费率备注", "费率", 1)}, l[1:]...)...), "", ErrBillLayout},
		{"another bill type than asked for", join(l...), BillTypeSuccess, ErrBillLayout},
		{"an invalid bill type asked for", join(l...), "RECHARGE_REFUND", ErrBillLayout},
		{"the old five-column summary", join(append(l[:4:4], "总交易单数,总交易额,总退款金额,总代金券或立减优惠退款金额,手续费总金额", "`3,`0.03,`0.00,`0.00,`0")...), "", ErrBillLayout},
		{"a row with a field too few", join(l[0], strings.TrimSuffix(l[1], ",`"), l[4], "`1,`0.01,`0.00,`0.00,`0.00000,`0.01,`0.00"), "", ErrBillMalformed},
		{"a row with a comma-separated extra field", join(l[0], l[1]+",`x", l[4], "`1,`0.01,`0.00,`0.00,`0.00000,`0.01,`0.00"), "", ErrBillMalformed},
		{"an amount with three decimals", join(l[0], row(1, "`0.01,`0.00,`0", "`0.010,`0.00,`0"), l[4], l[5]), "", ErrBillMalformed},
		{"an amount with one decimal", join(l[0], row(1, "`0.01,`0.00,`0", "`0.1,`0.00,`0"), l[4], l[5]), "", ErrBillMalformed},
		{"an amount that is not a number", join(l[0], row(1, "`0.01,`0.00,`0", "`a0.01,`0.00,`0"), l[4], l[5]), "", ErrBillMalformed},
		{"an amount in exponent form", join(l[0], row(1, "`0.01,`0.00,`0", "`1e2,`0.00,`0"), l[4], l[5]), "", ErrBillMalformed},
		{"an amount of 14 digits of yuan", join(l[0], row(1, "`0.01,`0.00,`0", "`12345678901234.00,`0.00,`0"), l[4], l[5]), "", ErrBillMalformed},
		{"a fee with two decimals", join(l[0], row(1, "`0.00000,", "`0.00,"), l[4], l[5]), "", ErrBillMalformed},
		{"a rate without %", join(l[0], row(1, "`1.00%", "`1.00"), l[4], l[5]), "", ErrBillMalformed},
		{"a date that does not exist", join(l[0], row(1, "2021-01-28", "2021-02-30"), l[4], l[5]), "", ErrBillMalformed},
		{"a time in another format", join(l[0], row(1, "2021-01-28 17:07:11", "2021/01/28 17:07:11"), l[4], l[5]), "", ErrBillMalformed},
		{"an empty out_trade_no", join(l[0], row(1, "`S20210128170702357723", "`"), l[4], l[5]), "", ErrBillMalformed},
		{"a refund row without refund ids", join(l[0], row(1, "`SUCCESS", "`REFUND"), l[4], l[5]), "", ErrBillMalformed},
		{"a line that is neither a row nor the summary header", join(l[0], l[1], "oops", l[4], l[5]), "", ErrBillMalformed},
		{"data after the summary row", join(append(l, l[1])...), "", ErrBillMalformed},
		{"a count that is not a number", join(append(l[:5:5], strings.Replace(l[5], "`3,", "`x,", 1))...), "", ErrBillMalformed},
		{"a line longer than the limit", join(l[0], l[1][:100]+strings.Repeat("x", MaxBillLineBytes)+l[1][100:]), "", ErrBillMalformed},
		{"a count that differs", join(append(l[:5:5], strings.Replace(l[5], "`3,", "`4,", 1))...), "", ErrBillSummary},
		{"a total that differs", join(append(l[:5:5], strings.TrimSuffix(l[5], "0.00")+"0.01")...), "", ErrBillSummary},
		{"a dropped row", join(l[0], l[1], l[2], l[4], l[5]), "", ErrBillSummary},
	} {
		t.Run("rejects "+tc.name, func(t *testing.T) {
			t.Parallel()
			rows, sum, _, err := parseAllTrade(strings.NewReader(tc.in), tc.want)
			if !errors.Is(err, tc.err) {
				t.Fatalf("got %v (%d rows), want %v", err, len(rows), tc.err)
			}
			if sum != (TradeBillSummary{}) {
				t.Fatalf("a summary %+v with an error", sum)
			}
			if strings.Contains(err.Error(), "ofyak5qR") || strings.Contains(err.Error(), "S2021") {
				t.Fatalf("the error quotes field values: %v", err)
			}
		})
	}
}

func TestParseTradeBillAccepts(t *testing.T) {
	t.Parallel()
	l := sampleAllLines(t)
	for _, tc := range []struct{ name, in string }{
		{"CRLF line endings", strings.Join(l, "\r\n") + "\r\n"},
		{"no final line break", strings.Join(l, "\n")},
		{"a byte order mark", bom + strings.Join(l, "\n")},
		{"blank lines between rows and after the summary", strings.Join(l[:3], "\n") + "\n\r\n\n" + strings.Join(l[3:], "\n") + "\n\n\r\n"},
		{"columns in another order", strings.Replace(l[0], "商品名称,商户数据包", "商户数据包,商品名称", 1) + "\n" +
			strings.Join(l[1:], "\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rows, sum, _, err := parseAllTrade(strings.NewReader(tc.in), BillTypeAll)
			if err != nil || len(rows) != 3 || sum.Count != 3 {
				t.Fatalf("%v %d %+v", err, len(rows), sum)
			}
			if strings.Contains(tc.name, "another order") && (rows[0].Description != "cipher code" || rows[0].Attach != "for testing") {
				t.Fatalf("columns not taken by name: %+v", rows[0])
			}
		})
	}
	t.Run("a comma inside a text field survives", func(t *testing.T) {
		in := strings.Join(l[:1], "\n") + "\n" + strings.Replace(l[1], "`for testing", "`for, testing", 1) + "\n" +
			strings.Join(l[4:], "\n")
		rows, _, _, err := parseAllTrade(strings.NewReader(in), "")
		if !errors.Is(err, ErrBillSummary) || len(rows) != 1 || rows[0].Description != "for, testing" {
			t.Fatalf("%v %+v", err, rows)
		}
	})
}

func TestParseBillAmountsAreExact(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in  string
		dec int
		v   int64
		ok  bool
	}{
		{"0.01", 2, 1, true}, {"12.30", 2, 1230, true}, {"-0.01", 2, -1, true}, {"1234567890123.99", 2, 123456789012399, true},
		{"0.29", 2, 29, true}, {"0.57", 2, 57, true}, {"1.15", 2, 115, true}, // float64 would give 28, 56, 114 after *100 truncation
		{"0.05940", 5, 5940, true}, {"-0.02000", 5, -2000, true}, {"7.79000", 5, 779000, true},
		{"", 2, 0, false}, {".01", 2, 0, false}, {"1.", 2, 0, false}, {"1", 2, 0, false}, {"+1.00", 2, 0, false},
		{"1.000", 2, 0, false}, {"1,00", 2, 0, false}, {"--1.00", 2, 0, false}, {" 1.00", 2, 0, false},
	} {
		v, ok := parseBillFixed(tc.in, tc.dec)
		if v != tc.v || ok != tc.ok {
			t.Errorf("parseBillFixed(%q, %d) = %d, %v; want %d, %v", tc.in, tc.dec, v, ok, tc.v, tc.ok)
		}
	}
	for in, want := range map[string]int64{"0.60%": 6000, "1.00%": 10000, "0.6%": 6000, "0.38%": 3800, "0.2500%": 2500, "100%": 1000000} {
		if v, ok := parseBillRate(in); !ok || v != want {
			t.Errorf("parseBillRate(%q) = %d, %v; want %d", in, v, ok, want)
		}
	}
	for _, in := range []string{"", "%", "0.60", "0.12345%", "1.%", "a%", "1000%"} {
		if _, ok := parseBillRate(in); ok {
			t.Errorf("parseBillRate(%q) accepted", in)
		}
	}
	for in, want := range map[string]int64{"3": 3, "20.0": 20, "17.00": 17, "0": 0} {
		if v, ok := parseBillCount(in); !ok || v != want {
			t.Errorf("parseBillCount(%q) = %d, %v", in, v, ok)
		}
	}
	for _, in := range []string{"", "-1", "1.5", "1.", "1e3", "x"} {
		if _, ok := parseBillCount(in); ok {
			t.Errorf("parseBillCount(%q) accepted", in)
		}
	}
}

func TestTradeBillWriterRoundTrip(t *testing.T) {
	t.Parallel()
	pay := TradeBillRow{
		TradeTime: bj("2026-05-20 13:29:35"), AppID: "wxd678efh567hg6787", MchID: "1230000109",
		TransactionID: "4200202605200000000000000001", OutTradeNo: "T0001", OpenID: "oUser", TradeType: "JSAPI",
		TradeState: TradeStateSuccess, BankType: "OTHERS", Currency: "CNY", SettlementTotal: 12345, Description: "茶, 叶",
		Attach: "a`b", FeeMilliFen: 74000, RatePPM: 6000, Total: 12345,
	}
	ref := pay
	ref.TradeState, ref.SettlementTotal, ref.Total = TradeStateRefund, 0, 0
	ref.RefundApplyTime, ref.RefundSuccessTime = bj("2026-05-20 14:00:00"), bj("2026-05-20 14:00:03")
	ref.RefundID, ref.OutRefundNo, ref.Refund, ref.RefundRequested = "50300000000001", "R1", 100, 100
	ref.RefundType, ref.RefundStatus, ref.FeeMilliFen = "ORIGINAL", "SUCCESS", -1000
	for _, typ := range []BillType{BillTypeAll, BillTypeSuccess, BillTypeRefund} {
		t.Run(string(typ)+" bills parse back to what was written", func(t *testing.T) {
			t.Parallel()
			in := []TradeBillRow{pay, ref}
			want := []TradeBillRow{pay, ref}
			switch typ {
			case BillTypeSuccess: // no refund columns, no refund times
				in = in[:1]
				want = want[:1]
			case BillTypeAll: // no refund times
				want[1].RefundApplyTime, want[1].RefundSuccessTime = time.Time{}, time.Time{}
			case BillTypeRefund:
				in, want = in[1:], want[1:]
			}
			var buf bytes.Buffer
			w, err := NewTradeBillWriter(&buf, typ)
			if err != nil {
				t.Fatal(err)
			}
			for i := range in {
				if err := w.Write(&in[i]); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if err := w.Write(&pay); err == nil {
				t.Fatal("Write after Close succeeded")
			}
			rows, sum, got, err := parseAllTrade(&buf, typ)
			if err != nil || got != typ || sum != w.Summary() || len(rows) != len(want) {
				t.Fatalf("%v %s %+v %d", err, got, sum, len(rows))
			}
			for i := range rows {
				if rows[i] != want[i] {
					t.Fatalf("row %d\n got %+v\nwant %+v", i, rows[i], want[i])
				}
			}
		})
	}
	t.Run("text is kept parseable", func(t *testing.T) {
		r := pay
		r.Description, r.Attach = "a\r\nb", "x,`y"
		var buf bytes.Buffer
		w, _ := NewTradeBillWriter(&buf, BillTypeSuccess)
		if err := w.Write(&r); err != nil {
			t.Fatal(err)
		}
		w.Close()
		rows, _, _, err := parseAllTrade(&buf, "")
		if err != nil || rows[0].Description != "a  b" || rows[0].Attach != "x,'y" {
			t.Fatalf("%v %+v", err, rows)
		}
	})
	t.Run("rows the parser would refuse are refused", func(t *testing.T) {
		var buf bytes.Buffer
		w, _ := NewTradeBillWriter(&buf, BillTypeAll)
		n := buf.Len()
		for name, mod := range map[string]func(*TradeBillRow){
			"no time":          func(r *TradeBillRow) { r.TradeTime = time.Time{} },
			"no out_trade_no":  func(r *TradeBillRow) { r.OutTradeNo = "" },
			"a refund without": func(r *TradeBillRow) { r.TradeState = TradeStateRefund },
			"a huge amount":    func(r *TradeBillRow) { r.Total = 1e16 },
			"a negative rate":  func(r *TradeBillRow) { r.RatePPM = -1 },
			"the year 10000":   func(r *TradeBillRow) { r.TradeTime = time.Date(10000, 1, 1, 0, 0, 0, 0, BillLocation) },
		} {
			r := pay
			mod(&r)
			if err := w.Write(&r); !errors.Is(err, ErrBillMalformed) {
				t.Errorf("%s: %v", name, err)
			}
		}
		if buf.Len() != n || w.Summary() != (TradeBillSummary{}) {
			t.Fatal("a refused row was written")
		}
	})
}

func TestDigestReader(t *testing.T) {
	t.Parallel()
	data := readBillSample(t, "trade_all_sdk.csv")
	const sum = "b18b51eb64422040e5ad738d47b358a40b1a7997" // testdata/bill/README.md
	t.Run("a matching digest ends in io.EOF and is verified", func(t *testing.T) {
		for _, hv := range []string{sum, strings.ToUpper(sum)} {
			d, err := NewDigestReader(iotest.HalfReader(bytes.NewReader(data)), "SHA1", hv)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(d)
			if err != nil || !bytes.Equal(got, data) || !d.Verified() || d.Size() != int64(len(data)) {
				t.Fatalf("%v verified=%v size=%d", err, d.Verified(), d.Size())
			}
			if n, err := d.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Fatalf("after the end: %d %v", n, err)
			}
		}
	})
	t.Run("one changed byte fails at the end with ErrBillDigest, every time", func(t *testing.T) {
		bad := bytes.Clone(data)
		bad[len(bad)/2] ^= 1
		d, _ := NewDigestReader(bytes.NewReader(bad), "SHA1", sum)
		got, err := io.ReadAll(d)
		if !errors.Is(err, ErrBillDigest) || len(got) != len(bad) || d.Verified() {
			t.Fatalf("%v %d", err, len(got))
		}
		if _, err2 := d.Read(make([]byte, 8)); err2 != err {
			t.Fatalf("not sticky: %v", err2)
		}
	})
	t.Run("a cut file fails with ErrBillDigest, and parsing it says so", func(t *testing.T) {
		d, _ := NewDigestReader(bytes.NewReader(data[:len(data)-1]), "SHA1", sum)
		_, _, _, err := parseAllTrade(d, BillTypeAll)
		if !errors.Is(err, ErrBillDigest) {
			t.Fatalf("%v", err)
		}
	})
	t.Run("a read error passes through and sticks", func(t *testing.T) {
		boom := errors.New("boom")
		d, _ := NewDigestReader(iotest.ErrReader(boom), "SHA1", sum)
		if _, err := d.Read(make([]byte, 8)); err != boom {
			t.Fatal(err)
		}
		if _, err := d.Read(make([]byte, 8)); err != boom || d.Verified() {
			t.Fatal(err)
		}
	})
	for name, tc := range map[string][2]string{
		"another hash type":          {"SHA256", sum},
		"a short value":              {"SHA1", sum[:39]},
		"a value that is not hex":    {"SHA1", "g" + sum[1:]},
		"an empty value":             {"SHA1", ""},
		"a value with a 0x prefix":   {"SHA1", "0x" + sum[2:]},
		"a value with spaces":        {"SHA1", " " + sum[1:]},
		"an empty hash type":         {"", sum},
		"MD5 (WeChat's APIv2 habit)": {"MD5", sum},
	} {
		if _, err := NewDigestReader(bytes.NewReader(data), tc[0], tc[1]); !errors.Is(err, ErrBillDigest) {
			t.Errorf("%s: %v", name, err)
		}
	}
	h := sha1.Sum(data) //nolint:gosec // WeChat's bill digest
	if hex.EncodeToString(h[:]) != sum {
		t.Fatal("the README's digest is stale")
	}
}

func TestParseBillDate(t *testing.T) {
	t.Parallel()
	d, err := ParseBillDate("2026-05-20")
	if err != nil || !d.Equal(time.Date(2026, 5, 19, 16, 0, 0, 0, time.UTC)) || BillDate(d) != "2026-05-20" {
		t.Fatalf("%v %v", d, err)
	}
	if BillDate(time.Date(2026, 5, 20, 16, 0, 0, 0, time.UTC)) != "2026-05-21" {
		t.Fatal("BillDate is not Beijing's day")
	}
	for _, s := range []string{"", "2026-5-20", "20260520", "2026-02-30", "2026-13-01", "2026-05-20 ", "2026/05/20", "1969-12-31", "２０２６-05-20"} {
		if _, err := ParseBillDate(s); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v", s, err)
		}
	}
}

func TestBillInfoCheck(t *testing.T) {
	t.Parallel()
	good := BillInfo{HashType: "SHA1", HashValue: "79bb0f45fc4c42234a918000b2668d689e2bde04",
		DownloadURL: "https://api.mch.weixin.qq.com/v3/billdownload/file?token=xxx"}
	if err := good.Check(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*BillInfo){
		"no hash_type":             func(b *BillInfo) { b.HashType = "" },
		"no hash_value":            func(b *BillInfo) { b.HashValue = "" },
		"no download_url":          func(b *BillInfo) { b.DownloadURL = "" },
		"hash_type MD5":            func(b *BillInfo) { b.HashType = "MD5" },
		"a short hash_value":       func(b *BillInfo) { b.HashValue = b.HashValue[:38] },
		"a relative download_url":  func(b *BillInfo) { b.DownloadURL = "/v3/billdownload/file?token=xxx" },
		"a download_url with \\n":  func(b *BillInfo) { b.DownloadURL = "https:\n//api.mch.weixin.qq.com/v3/billdownload/file?token=x" },
		"an ftp download_url":      func(b *BillInfo) { b.DownloadURL = "ftp://api.mch.weixin.qq.com/x" },
		"a download_url with user": func(b *BillInfo) { b.DownloadURL = "https://u:p@api.mch.weixin.qq.com/x" },
		"a download_url of 2049 bytes": func(b *BillInfo) {
			b.DownloadURL = "https://api.mch.weixin.qq.com/x?token=" + strings.Repeat("a", 2049-38)
		},
	} {
		b := good
		mod(&b)
		err := b.Check()
		if err == nil || !(errors.Is(err, ErrMalformed) || errors.Is(err, ErrMissingField)) {
			t.Errorf("%s: %v", name, err)
		} else if strings.Contains(err.Error(), "token") {
			t.Errorf("%s: the error quotes the URL: %v", name, err)
		}
	}
}

// TestParseTradeBillAllocations holds the parser to one allocation per row
// (the line's string) once its buffers have grown.
func TestParseTradeBillAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation count")
	}
	var buf bytes.Buffer
	w, _ := NewTradeBillWriter(&buf, BillTypeAll)
	row := TradeBillRow{TradeTime: bj("2026-05-20 13:29:35"), MchID: "1230000109", TransactionID: "42", OutTradeNo: "T1",
		TradeState: TradeStateSuccess, Total: 1, RatePPM: 6000}
	for range 1000 {
		w.Write(&row)
	}
	w.Close()
	data := buf.Bytes()
	allocs := testing.AllocsPerRun(5, func() {
		p := NewTradeBillReader(bytes.NewReader(data), BillTypeAll)
		for p.Next() {
		}
		if p.Err() != nil {
			t.Fatal(p.Err())
		}
	})
	if perRow := allocs / 1000; perRow > 1.05 {
		t.Fatalf("%.2f allocations per row, want 1", perRow)
	}
}
