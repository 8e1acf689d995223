package sim

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/wxpay"
	wxclient "github.com/wxpayd/wxpayd/wxpay/client"
)

// billClient is wxpayd's own client (wxpay/client) for ts, on ts's clock.
func billClient(t testing.TB, ts *testSim) *wxclient.Client {
	t.Helper()
	id := ts.Identity()
	mk, _ := wxpay.GoBackend.NewPrivateKey(id.MerchantKey)
	signer, _ := wxpay.NewSigner(id.MchID, id.MerchantSerial, mk)
	ks := wxpay.NewKeySet(nil)
	if err := ks.AddPublicKey(id.PublicKeyID, &id.WechatPayKey.PublicKey); err != nil {
		t.Fatal(err)
	}
	now := ts.Server.clock.Now
	c, err := wxclient.New(wxclient.Config{BaseURL: ts.URL()}, signer, wxpay.NewVerifier(ks, wxpay.WithClock(now)), wxclient.WithClock(now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// tradeBill asks for, downloads and parses a trade bill.
func tradeBill(t testing.TB, c *wxclient.Client, date string, typ wxpay.BillType, gzip bool) ([]wxpay.TradeBillRow, wxpay.TradeBillSummary, error) {
	t.Helper()
	ctx := context.Background()
	info, err := c.TradeBill(ctx, date, typ, gzip)
	if err != nil {
		return nil, wxpay.TradeBillSummary{}, err
	}
	rc, err := c.DownloadBill(ctx, info)
	if err != nil {
		return nil, wxpay.TradeBillSummary{}, err
	}
	defer rc.Close()
	var rows []wxpay.TradeBillRow
	sum, _, err := wxpay.ParseTradeBill(rc, typ, func(r *wxpay.TradeBillRow) error { rows = append(rows, *r); return nil })
	return rows, sum, err
}

func fundBill(t testing.TB, c *wxclient.Client, date string, gzip bool) ([]wxpay.FundFlowRow, wxpay.FundFlowSummary, error) {
	t.Helper()
	ctx := context.Background()
	info, err := c.FundFlowBill(ctx, date, wxpay.AccountBasic, gzip)
	if err != nil {
		return nil, wxpay.FundFlowSummary{}, err
	}
	rc, err := c.DownloadBill(ctx, info)
	if err != nil {
		return nil, wxpay.FundFlowSummary{}, err
	}
	defer rc.Close()
	var rows []wxpay.FundFlowRow
	sum, err := wxpay.ParseFundFlowBill(rc, func(r *wxpay.FundFlowRow) error { rows = append(rows, *r); return nil })
	return rows, sum, err
}

// sameBillRow compares rows with their times by instant (the simulator's
// clock and the parser use different *time.Location values).
func sameBillRow(a, b wxpay.TradeBillRow) bool {
	if !a.TradeTime.Equal(b.TradeTime) || !a.RefundApplyTime.Equal(b.RefundApplyTime) ||
		!a.RefundSuccessTime.Equal(b.RefundSuccessTime) {
		return false
	}
	a.TradeTime, a.RefundApplyTime, a.RefundSuccessTime = time.Time{}, time.Time{}, time.Time{}
	b.TradeTime, b.RefundApplyTime, b.RefundSuccessTime = time.Time{}, time.Time{}, time.Time{}
	return a == b
}

func wantCode(t testing.TB, err error, code string) {
	t.Helper()
	if got, _ := wxpay.APIErrorCode(err); got != code {
		t.Fatalf("%v, want %s", err, code)
	}
}

func TestBillsFromTheLedger(t *testing.T) {
	t.Parallel()
	ts := startSim(t, func(c *Config) { c.RefundDelay = 10 * time.Second })
	m := newMerchant(t, ts.Server, nil)
	const desc = "Image形象店-深圳腾大-QQ公仔"            // prepayReq's
	txA := ts.paidOrder(t, m, "BILL000001", 100) // at t0, 2026-05-20 13:29:35
	tA := ts.clock.Now()
	ts.clock.Advance(time.Minute)
	txB := ts.paidOrder(t, m, "BILL000002", 12345)
	tB := ts.clock.Now()
	ts.c.prepay("BILL000003", "oBuyer", m.url) // never paid: in no bill
	rf1 := decodeRefund(t, ts.c.do("POST", "/v3/refund/domestic/refunds", refundReq("BILL000001", "BR1", 40, 100)))
	tR1 := ts.clock.Now()
	ts.endRefunds(t, m, 10*time.Second, 1)
	tR1done := ts.clock.Now()
	// A refund asked for just before midnight, still PROCESSING when the
	// day's bills are frozen.
	ts.clock.Set(time.Date(2026, 5, 20, 23, 59, 50, 0, beijing))
	rf2 := decodeRefund(t, ts.c.do("POST", "/v3/refund/domestic/refunds", refundReq("BILL000002", "BR2", 1000, 12345)))
	var counts BillCounts
	if st := ts.c.simPost(pathSimBillsGenerate, map[string]any{"date": "2026-05-20"}, &counts); st != 201 ||
		counts != (BillCounts{Date: "2026-05-20", Payments: 2, Refunds: 2, FundRows: 5}) {
		t.Fatalf("generate: %d %+v", st, counts)
	}
	ts.endRefunds(t, m, 10*time.Second, 1) // BR2 succeeds after the freeze
	c := billClient(t, ts)

	payRow := func(tx, otn string, at time.Time, total, feeFen int64) wxpay.TradeBillRow {
		return wxpay.TradeBillRow{TradeTime: at, AppID: testID.AppID, MchID: testID.MchID, TransactionID: tx,
			OutTradeNo: otn, OpenID: "oBuyer", TradeType: "JSAPI", TradeState: "SUCCESS", BankType: "OTHERS",
			Currency: "CNY", SettlementTotal: total, Description: desc, FeeMilliFen: feeFen * 1000, RatePPM: 6000, Total: total}
	}
	a, b := payRow(txA, "BILL000001", tA, 100, 1), payRow(txB, "BILL000002", tB, 12345, 74)
	refRow := func(p wxpay.TradeBillRow, rf wxpay.Refund, at, done time.Time, amount int64, status string) wxpay.TradeBillRow {
		r := p
		r.TradeState, r.SettlementTotal, r.Total = "REFUND", 0, 0
		r.RefundApplyTime, r.RefundSuccessTime = at, done
		r.RefundID, r.OutRefundNo, r.Refund, r.RefundRequested = rf.RefundID, rf.OutRefundNo, amount, amount
		r.RefundType, r.RefundStatus, r.FeeMilliFen = "ORIGINAL", status, -billFee(amount)*1000
		return r
	}
	r1 := refRow(a, rf1, tR1, tR1done, 40, "SUCCESS")
	r2 := refRow(b, rf2, time.Date(2026, 5, 20, 23, 59, 50, 0, beijing), time.Time{}, 1000, "PROCESSING")
	noTimes := func(r wxpay.TradeBillRow) wxpay.TradeBillRow {
		r.RefundApplyTime, r.RefundSuccessTime = time.Time{}, time.Time{}
		return r
	}
	for _, tc := range []struct {
		typ  wxpay.BillType
		want []wxpay.TradeBillRow
	}{
		{wxpay.BillTypeAll, []wxpay.TradeBillRow{a, b, noTimes(r1), noTimes(r2)}},
		{wxpay.BillTypeSuccess, []wxpay.TradeBillRow{a, b}},
		{wxpay.BillTypeRefund, []wxpay.TradeBillRow{r1, r2}},
	} {
		for _, gz := range []bool{false, true} {
			t.Run(string(tc.typ)+" bill, gzip "+map[bool]string{false: "off", true: "on"}[gz]+", as frozen", func(t *testing.T) {
				rows, sum, err := tradeBill(t, c, "2026-05-20", tc.typ, gz)
				if err != nil {
					t.Fatal(err)
				}
				if len(rows) != len(tc.want) || sum.Count != int64(len(tc.want)) {
					t.Fatalf("%d rows, summary %+v", len(rows), sum)
				}
				for i := range rows {
					if !sameBillRow(rows[i], tc.want[i]) {
						t.Fatalf("row %d\n got %+v\nwant %+v", i, rows[i], tc.want[i])
					}
				}
			})
		}
	}
	t.Run("the fund flow of the basic account", func(t *testing.T) {
		rows, sum, err := fundBill(t, c, "2026-05-20", true)
		if err != nil {
			t.Fatal(err)
		}
		type mv struct {
			typ, dir      string
			amount, bal   int64
			business, vou string
		}
		want := []mv{
			{"交易", wxpay.FundIncome, 100, 100, txA, "BILL000001"},
			{"扣除交易手续费", wxpay.FundExpense, 1, 99, txA, "BILL000001"},
			{"交易", wxpay.FundIncome, 12345, 12444, txB, "BILL000002"},
			{"扣除交易手续费", wxpay.FundExpense, 74, 12370, txB, "BILL000002"},
			{"退款", wxpay.FundExpense, 40, 12330, rf1.RefundID, "BR1"}, // BR2 had not succeeded when frozen
		}
		if len(rows) != len(want) || sum != (wxpay.FundFlowSummary{Count: 5, IncomeCount: 2, Income: 12445, ExpenseCount: 3, Expense: 115}) {
			t.Fatalf("%d rows %+v", len(rows), sum)
		}
		for i, w := range want {
			r := rows[i]
			if r.BusinessType != w.typ || r.Direction != w.dir || r.Amount != w.amount || r.Balance != w.bal ||
				r.BusinessID != w.business || r.VoucherID != w.vou || !strings.HasPrefix(r.FlowID, testID.MchID+"20260520") {
				t.Fatalf("row %d: %+v, want %+v", i, r, w)
			}
		}
		if rows[4].Note != "退款总金额0.40元;含手续费0.00元" || rows[4].Applicant != testID.MchID+"API" || !rows[4].Time.Equal(tR1done) {
			t.Fatalf("%+v", rows[4])
		}
	})
	t.Run("the next day's bills carry the opening balance and BR2's success", func(t *testing.T) {
		ts.clock.Set(time.Date(2026, 5, 22, 10, 0, 0, 0, beijing))
		rows, _, err := fundBill(t, c, "2026-05-21", false)
		if err != nil || len(rows) != 1 || rows[0].Amount != 1000 || rows[0].Balance != 12330-1000 || rows[0].VoucherID != "BR2" {
			t.Fatalf("%v %+v", err, rows)
		}
		// Nothing was paid or refunded on the 21st: no trade bill.
		_, _, err = tradeBill(t, c, "2026-05-21", wxpay.BillTypeAll, false)
		wantCode(t, err, wxpay.CodeNoStatementExist)
	})
	if st := ts.Stats(); st.Bills.Generated != 2 || st.Bills.Downloads != 8 || st.Requests["bill"] < 9 {
		t.Fatalf("stats %+v requests %v", st.Bills, st.Requests)
	}
}

func TestBillAvailability(t *testing.T) {
	t.Parallel()
	ts := startSim(t, nil)
	m := newMerchant(t, ts.Server, nil)
	ts.paidOrder(t, m, "AVAIL00001", 100) // 2026-05-20
	c := billClient(t, ts)
	ctx := context.Background()
	at := func(s string) { ts.clock.Set(time.Date(2026, 5, 21, 0, 0, 0, 0, beijing).Add(mustDuration(s))) }
	trade := func(date string) error { _, err := c.TradeBill(ctx, date, wxpay.BillTypeAll, false); return err }

	wantCode(t, trade("2026-05-20"), wxpay.CodeInvalidRequest) // today
	at("9h59m59s")
	wantCode(t, trade("2026-05-20"), wxpay.CodeStatementCreating)
	wantCode(t, trade("2026-05-21"), wxpay.CodeInvalidRequest) // today
	wantCode(t, trade("2026-05-25"), wxpay.CodeInvalidRequest) // future
	at("10h")
	if err := trade("2026-05-20"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, trade("2026-05-19"), wxpay.CodeNoStatementExist)
	_, err := c.FundFlowBill(ctx, "2026-05-19", wxpay.AccountBasic, false)
	wantCode(t, err, wxpay.CodeNoStatementExist)
	_, err = c.FundFlowBill(ctx, "2026-05-20", wxpay.AccountOperation, false)
	wantCode(t, err, wxpay.CodeNoStatementExist)
	wantCode(t, trade("2026-02-20"), wxpay.CodeInvalidRequest)   // more than three months back
	wantCode(t, trade("2026-02-21"), wxpay.CodeNoStatementExist) // three months back exactly
	// A REFUND bill of a day with payments only is served, empty.
	rows, sum, err := tradeBill(t, c, "2026-05-20", wxpay.BillTypeRefund, false)
	if err != nil || len(rows) != 0 || sum != (wxpay.TradeBillSummary{}) {
		t.Fatalf("%v %d %+v", err, len(rows), sum)
	}
	for _, tc := range []struct{ query, code string }{
		{"bill_date=2026-5-20&bill_type=ALL", wxpay.CodeParamError},
		{"bill_type=ALL", wxpay.CodeParamError},
		{"bill_date=2026-05-20&bill_type=all", wxpay.CodeParamError},
		{"bill_date=2026-05-20&bill_type=RECHARGE_REFUND", wxpay.CodeNoStatementExist},
		{"bill_date=2026-05-20&tar_type=ZIP", wxpay.CodeParamError},
	} {
		ts.c.do("GET", pathTradeBill+"?"+tc.query, nil).wantErr(t, 400, tc.code)
	}
	ts.c.do("GET", pathFundFlowBill+"?bill_date=2026-05-20&account_type=basic", nil).wantErr(t, 400, wxpay.CodeParamError)
	ts.c.do("POST", pathTradeBill+"?bill_date=2026-05-20", nil).wantErr(t, 405, wxpay.CodeInvalidRequest)

	t.Run("with BillReadyNow yesterday's bill is there right after midnight", func(t *testing.T) {
		t.Parallel()
		ts := startSim(t, func(c *Config) { c.BillReadyAfter = BillReadyNow })
		ts.paidOrder(t, newMerchant(t, ts.Server, nil), "AVAIL00002", 100)
		c := billClient(t, ts)
		ts.clock.Set(time.Date(2026, 5, 21, 0, 0, 0, 0, beijing))
		if rows, _, err := tradeBill(t, c, "2026-05-20", wxpay.BillTypeAll, false); err != nil || len(rows) != 1 {
			t.Fatalf("%v %d", err, len(rows))
		}
	})
}

func mustDuration(s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return d
}

func TestBillDownloadRules(t *testing.T) {
	t.Parallel()
	ts := startSim(t, nil)
	ts.paidOrder(t, newMerchant(t, ts.Server, nil), "DOWNL00001", 100)
	ts.GenerateBill("2026-05-20")
	a := ts.c.do("GET", pathTradeBill+"?bill_date=2026-05-20&bill_type=ALL", nil)
	a.wantOK(t, 200)
	info, err := decodeBillInfo(a.body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(info.DownloadURL, ts.URL()+pathBillDownload+"?token=") {
		t.Fatalf("download_url %s is not on the host called", info.DownloadURL)
	}
	target := strings.TrimPrefix(info.DownloadURL, ts.URL())
	t.Run("the file is served unsigned, with its digest", func(t *testing.T) {
		for range 2 { // a token works until it expires
			resp, body, err := ts.c.send("GET", target, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 || resp.Header.Get("Wechatpay-Signature") != "" || resp.Header.Get("Content-Type") != "application/octet-stream" {
				t.Fatalf("%d %v", resp.StatusCode, resp.Header)
			}
			d, _ := wxpay.NewDigestReader(strings.NewReader(string(body)), info.HashType, info.HashValue)
			if _, err := io.ReadAll(d); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("an unauthenticated download is 401", func(t *testing.T) {
		resp, err := http.Get(info.DownloadURL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatal(resp.StatusCode)
		}
	})
	t.Run("an unknown token is 404 RESOURCE_NOT_EXISTS", func(t *testing.T) {
		ts.c.do("GET", pathBillDownload+"?token=nope", nil).wantErr(t, 404, wxpay.CodeResourceNotExists)
	})
	t.Run("a token expires after 5 minutes", func(t *testing.T) {
		ts.clock.Advance(BillDownloadTTL)
		ts.c.do("GET", target, nil).wantErr(t, 404, wxpay.CodeResourceNotExists)
	})
}

func decodeBillInfo(b []byte) (wxpay.BillInfo, error) {
	var info wxpay.BillInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return info, err
	}
	return info, info.Check()
}

func TestBillFaults(t *testing.T) {
	t.Parallel()
	t.Run("the corrupt kind belongs to bill_download", func(t *testing.T) {
		f, err := ParseFaults("bill_download.corrupt=0.25,all.system_error=0.5")
		if err != nil || f.String() != "all.system_error=0.5,bill_download.corrupt=0.25" || f.Rate("bill_download", "corrupt") != 0.25 ||
			f.Rate("bill", "system_error") != 0.5 {
			t.Fatalf("%v %q", err, f)
		}
		if again, err := ParseFaults(f.String()); err != nil || *again != *f {
			t.Fatalf("%v", err)
		}
		for _, spec := range []string{"prepay.corrupt=1", "all.corrupt=1", "bill.corrupt=1",
			"bill_download.corrupt=0.6,bill_download.lost=0.5", "bill_download.corrupt=1,bill_download.corrupt=1"} {
			if _, err := ParseFaults(spec); !errors.Is(err, ErrSpec) {
				t.Errorf("%s: %v", spec, err)
			}
		}
	})
	ts := startSim(t, nil)
	ts.paidOrder(t, newMerchant(t, ts.Server, nil), "FAULT00001", 100)
	ts.GenerateBill("2026-05-20")
	c := billClient(t, ts)
	t.Run("a corrupt download fails its digest, though it parses", func(t *testing.T) {
		ts.SetFaults("bill_download.corrupt=1")
		defer ts.SetFaults("")
		for _, gz := range []bool{false, true} {
			rows, _, err := tradeBill(t, c, "2026-05-20", wxpay.BillTypeAll, gz)
			if !errors.Is(err, wxpay.ErrBillDigest) || len(rows) != 1 {
				t.Fatalf("%v %d rows", err, len(rows))
			}
			_, _, err = fundBill(t, c, "2026-05-20", gz)
			if !errors.Is(err, wxpay.ErrBillDigest) {
				t.Fatalf("fund flow: %v", err)
			}
		}
		if st := ts.Stats(); st.Bills.Corrupted != 4 || st.Bills.Downloads != 4 {
			t.Fatalf("%+v", st.Bills)
		}
	})
	for _, tc := range []struct {
		spec  string
		check func(error) bool
	}{
		{"bill.system_error=1", func(err error) bool { code, _ := wxpay.APIErrorCode(err); return code == wxpay.CodeSystemError }},
		{"bill.rate_limited=1", func(err error) bool { code, _ := wxpay.APIErrorCode(err); return code == wxpay.CodeFrequencyLimited }},
		{"bill_download.system_error=1", func(err error) bool { code, _ := wxpay.APIErrorCode(err); return code == wxpay.CodeSystemError }},
		{"bill_download.bad_gateway=1", func(err error) bool { return errors.Is(err, wxclient.ErrUnsignedResponse) }},
		{"bill_download.lost=1", func(err error) bool { return err != nil && !errors.Is(err, wxpay.ErrBillDigest) }},
	} {
		t.Run(tc.spec+" fails as it says", func(t *testing.T) {
			if err := ts.SetFaults(tc.spec); err != nil {
				t.Fatal(err)
			}
			defer ts.SetFaults("")
			if _, _, err := tradeBill(t, c, "2026-05-20", wxpay.BillTypeAll, false); !tc.check(err) {
				t.Fatalf("%v", err)
			}
		})
	}
	if st := ts.Stats(); st.APIFaults["bill.system_error"] != 1 || st.APIFaults["bill_download.lost"] < 1 { // a cut GET is tried twice
		t.Fatalf("%v", st.APIFaults)
	}
}

func TestSyntheticBill(t *testing.T) {
	t.Parallel()
	ts := startSim(t, nil)
	c := billClient(t, ts)
	var counts BillCounts
	if st := ts.c.simPost(pathSimBillsSynthetic, map[string]any{"date": "2026-05-19", "rows": 1000}, &counts); st != 201 ||
		counts.Payments != 900 || counts.Refunds != 100 {
		t.Fatalf("%d %+v", st, counts)
	}
	for _, tc := range []struct {
		typ  wxpay.BillType
		rows int
	}{{wxpay.BillTypeAll, 1000}, {wxpay.BillTypeSuccess, 900}, {wxpay.BillTypeRefund, 100}} {
		rows, sum, err := tradeBill(t, c, "2026-05-19", tc.typ, tc.typ == wxpay.BillTypeRefund)
		if err != nil || len(rows) != tc.rows {
			t.Fatalf("%s: %v %d", tc.typ, err, len(rows))
		}
		if tc.typ == wxpay.BillTypeAll && (sum.Refund == 0 || sum.Total == 0 || rows[999].TradeState != "REFUND" ||
			rows[0].OutTradeNo != "SYN202605190000000000" || !rows[899].TradeTime.Before(time.Date(2026, 5, 20, 0, 0, 0, 0, beijing))) {
			t.Fatalf("%+v\n%+v\n%+v", sum, rows[0], rows[999])
		}
	}
	rows, sum, err := fundBill(t, c, "2026-05-19", false)
	if err != nil || len(rows) != counts.FundRows || sum.ExpenseCount != int64(counts.FundRows-900) {
		t.Fatalf("%v %d %+v", err, len(rows), sum)
	}
	i1, _ := c.TradeBill(context.Background(), "2026-05-19", wxpay.BillTypeAll, false)
	i2, _ := c.TradeBill(context.Background(), "2026-05-19", wxpay.BillTypeAll, true)
	if i1.HashValue != i2.HashValue || i1.DownloadURL == i2.DownloadURL {
		t.Fatalf("%+v %+v", i1, i2)
	}
	for _, body := range []map[string]any{
		{"date": "2026-05-19", "rows": 0}, {"date": "2026-05-19", "rows": MaxSyntheticBillRows + 1},
		{"date": "20260519", "rows": 10}, {"date": "2026-05-19", "rows": 10, "extra": 1},
	} {
		if st := ts.c.simPost(pathSimBillsSynthetic, body, nil); st != 400 {
			t.Errorf("%v: %d", body, st)
		}
	}
	if st := ts.c.simPost(pathSimBillsGenerate, map[string]any{"date": "2026-05-19", "rows": 10}, nil); st != 400 {
		t.Errorf("generate with rows: %d", st)
	}
	if st := ts.Stats(); st.Bills.Synthetic != 1 {
		t.Fatalf("%+v", st.Bills)
	}
}
