package clickhouse

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/wxpayd/wxpayd/wxpay"
)

// BillLoader inserts WeChat's bill rows and reconciliation discrepancies
// into bill_trades and reconcile_discrepancies (migration 006). Loading the
// same rows again is harmless: both tables keep the latest load of a key
// (read them with FINAL). A BillLoader is safe for concurrent use.
type BillLoader struct {
	conn driver.Conn
	db   string
	now  func() time.Time
}

// OpenBillLoader connects to ClickHouse as Open does (creating the database
// and applying the migrations) and returns a loader.
func OpenBillLoader(ctx context.Context, cfg Config) (*BillLoader, error) {
	w, err := Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &BillLoader{conn: w.conn, db: w.cfg.Database, now: time.Now}, nil
}

// NewBillLoader loads through an open Writer's connection pool (the
// sink's); closing the Writer closes it.
func NewBillLoader(w *Writer) *BillLoader {
	return &BillLoader{conn: w.conn, db: w.cfg.Database, now: time.Now}
}

// Close closes a loader made by OpenBillLoader.
func (l *BillLoader) Close() error { return l.conn.Close() }

const billColumns = "bill_date, out_trade_no, out_refund_no, trade_time, appid, mchid, sub_mchid, transaction_id, " +
	"openid, trade_type, trade_state, bank_type, currency, settlement_total, coupon, total, refund_id, refund, " +
	"refund_requested, recharge_coupon_refund, refund_type, refund_status, fee_milli_fen, rate_ppm, loaded_ms"

// billDay is the Date of a bill_date: the day itself, whatever the zone.
func billDay(date string) (time.Time, error) {
	t, err := time.Parse(wxpay.BillDateLayout, date)
	if err != nil {
		return time.Time{}, fmt.Errorf("clickhouse: bill date %q: %w", date, err)
	}
	return t, nil // UTC midnight: the driver takes the date in t's zone
}

// LoadTrades inserts rows of date's trade bill in one INSERT.
func (l *BillLoader) LoadTrades(ctx context.Context, date string, rows []wxpay.TradeBillRow) (err error) {
	day, err := billDay(date)
	if err != nil || len(rows) == 0 {
		return err
	}
	n := len(rows)
	str := func() []string { return make([]string, n) }
	i64 := func() []int64 { return make([]int64, n) }
	days, times := make([]time.Time, n), make([]time.Time, n)
	otn, orn, appid, mchid, sub, txn, openid, ttype, tstate, bank, cur := str(), str(), str(), str(), str(), str(), str(), str(), str(), str(), str()
	refundID, rtype, rstatus := str(), str(), str()
	settle, coupon, total, refund, requested, recharge, fee, rate, loaded := i64(), i64(), i64(), i64(), i64(), i64(), i64(), i64(), i64()
	now := l.now().UnixMilli()
	for i := range rows {
		r := &rows[i]
		days[i], times[i] = day, r.TradeTime
		otn[i], orn[i], appid[i], mchid[i], sub[i] = r.OutTradeNo, r.OutRefundNo, r.AppID, r.MchID, r.SubMchID
		txn[i], openid[i], ttype[i], tstate[i], bank[i], cur[i] = r.TransactionID, r.OpenID, r.TradeType, r.TradeState, r.BankType, r.Currency
		settle[i], coupon[i], total[i], refundID[i], refund[i] = r.SettlementTotal, r.Coupon, r.Total, r.RefundID, r.Refund
		requested[i], recharge[i], rtype[i], rstatus[i] = r.RefundRequested, r.RechargeCouponRefund, r.RefundType, r.RefundStatus
		fee[i], rate[i], loaded[i] = r.FeeMilliFen, r.RatePPM, now
	}
	return l.insert(ctx, "INSERT INTO "+l.db+".bill_trades ("+billColumns+")", []any{days, otn, orn, times, appid, mchid,
		sub, txn, openid, ttype, tstate, bank, cur, settle, coupon, total, refundID, refund, requested, recharge, rtype,
		rstatus, fee, rate, loaded})
}

// Discrepancy is a row of reconcile_discrepancies.
type Discrepancy struct {
	Key, Class, Status, OutTradeNo, OutRefundNo, TransactionID string
	OurState                                                   string
	OurAmount                                                  int64
	WeChatState                                                string
	WeChatAmount                                               int64
	Detail, Repair                                             string
	FoundMs, UpdatedMs                                         int64
}

const discrepancyColumns = "bill_date, dkey, class, status, out_trade_no, out_refund_no, transaction_id, our_state, " +
	"our_amount, wechat_state, wechat_amount, detail, repair, found_ms, updated_ms"

// LoadDiscrepancies inserts discrepancies of date in one INSERT.
func (l *BillLoader) LoadDiscrepancies(ctx context.Context, date string, ds []Discrepancy) error {
	day, err := billDay(date)
	if err != nil || len(ds) == 0 {
		return err
	}
	n := len(ds)
	str := func() []string { return make([]string, n) }
	i64 := func() []int64 { return make([]int64, n) }
	days := make([]time.Time, n)
	key, class, status, otn, orn, txn, ours, theirs, detail, repair := str(), str(), str(), str(), str(), str(), str(), str(), str(), str()
	ourAmount, theirAmount, found, updated := i64(), i64(), i64(), i64()
	for i := range ds {
		d := &ds[i]
		days[i], key[i], class[i], status[i], otn[i], orn[i], txn[i] = day, d.Key, d.Class, d.Status, d.OutTradeNo, d.OutRefundNo, d.TransactionID
		ours[i], ourAmount[i], theirs[i], theirAmount[i] = d.OurState, d.OurAmount, d.WeChatState, d.WeChatAmount
		detail[i], repair[i], found[i], updated[i] = d.Detail, d.Repair, d.FoundMs, d.UpdatedMs
	}
	return l.insert(ctx, "INSERT INTO "+l.db+".reconcile_discrepancies ("+discrepancyColumns+")", []any{days, key, class,
		status, otn, orn, txn, ours, ourAmount, theirs, theirAmount, detail, repair, found, updated})
}

func (l *BillLoader) insert(ctx context.Context, q string, cols []any) (err error) {
	batch, err := l.conn.PrepareBatch(ctx, q)
	if err != nil {
		return fmt.Errorf("clickhouse: prepare insert: %w", err)
	}
	defer func() {
		if err != nil {
			_ = batch.Abort()
		}
	}()
	for i, c := range cols {
		if err := batch.Column(i).Append(c); err != nil {
			return fmt.Errorf("clickhouse: append column %d: %w", i, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("clickhouse: insert: %w", err)
	}
	return nil
}
