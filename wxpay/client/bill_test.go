package client

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha1" //nolint:gosec // WeChat's bill digest
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/wxpayd/wxpayd/wxpay"
)

const pathBillDownload = "/v3/billdownload/file"

func billSample(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("../testdata/bill/trade_all_sdk.csv")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sha1Hex(b []byte) string {
	h := sha1.Sum(b) //nolint:gosec // WeChat's bill digest
	return hex.EncodeToString(h[:])
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// billRoutes makes f answer the bill APIs with file (hash digest) and serve
// the download, unsigned, with body.
func billRoutes(f *fakeWeChat, digest string, body []byte) {
	info := func(r *recorded) (int, []byte, answerOpts) {
		u := testBaseURL + pathBillDownload + "?token=g44bIUH1Gy_oZq6Aalf-gQP%2FlJ"
		if r.query["tar_type"] == "GZIP" {
			u += "&tartype=gzip"
		}
		b, _ := json.Marshal(wxpay.BillInfo{HashType: "SHA1", HashValue: digest, DownloadURL: u})
		return 200, b, answerOpts{}
	}
	f.setRoute("GET", pathTradeBill, info)
	f.setRoute("GET", pathFundFlowBill, info)
	f.setRoute("GET", pathBillDownload, func(*recorded) (int, []byte, answerOpts) {
		return 200, body, answerOpts{unsigned: true}
	})
}

func TestBillInfoRequests(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	data := billSample(t)
	billRoutes(f, sha1Hex(data), data)
	c := newTestClient(t, f, Config{}, nil)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		call func() (wxpay.BillInfo, error)
		uri  string
		gzip bool
	}{
		{"a trade bill of every trade", func() (wxpay.BillInfo, error) {
			return c.TradeBill(ctx, "2026-05-20", wxpay.BillTypeAll, false)
		}, "/v3/bill/tradebill?bill_date=2026-05-20&bill_type=ALL", false},
		{"an empty type is ALL", func() (wxpay.BillInfo, error) { return c.TradeBill(ctx, "2026-05-20", "", false) },
			"/v3/bill/tradebill?bill_date=2026-05-20&bill_type=ALL", false},
		{"a gzipped refund bill", func() (wxpay.BillInfo, error) {
			return c.TradeBill(ctx, "2026-02-28", wxpay.BillTypeRefund, true)
		}, "/v3/bill/tradebill?bill_date=2026-02-28&bill_type=REFUND&tar_type=GZIP", true},
		{"a fund-flow bill of the basic account", func() (wxpay.BillInfo, error) {
			return c.FundFlowBill(ctx, "2026-05-20", "", false)
		}, "/v3/bill/fundflowbill?bill_date=2026-05-20&account_type=BASIC", false},
		{"a gzipped fund-flow bill of the fees account", func() (wxpay.BillInfo, error) {
			return c.FundFlowBill(ctx, "2026-05-20", wxpay.AccountFees, true)
		}, "/v3/bill/fundflowbill?bill_date=2026-05-20&account_type=FEES&tar_type=GZIP", true},
	} {
		t.Run(tc.name+" is a signed GET and its answer is decoded", func(t *testing.T) {
			info, err := tc.call()
			if err != nil {
				t.Fatal(err)
			}
			r := f.lastRequest(t)
			if r.method != "GET" || r.uri != tc.uri || r.authErr != nil || r.header["Accept"] != "application/json" {
				t.Fatalf("%s %s auth %v accept %q", r.method, r.uri, r.authErr, r.header["Accept"])
			}
			if info.HashType != "SHA1" || info.HashValue != sha1Hex(data) || info.Gzip != tc.gzip ||
				!strings.HasPrefix(info.DownloadURL, testBaseURL+pathBillDownload) {
				t.Fatalf("%+v", info)
			}
		})
	}
}

func TestBillInfoRefusals(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	c := newTestClient(t, f, Config{}, nil)
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"a date in another format": func() error { _, err := c.TradeBill(ctx, "20260520", wxpay.BillTypeAll, false); return err },
		"a date that does not exist": func() error {
			_, err := c.TradeBill(ctx, "2026-02-29", wxpay.BillTypeAll, false)
			return err
		},
		"a date with a query in it": func() error {
			_, err := c.TradeBill(ctx, "2026-05-20&x=1", wxpay.BillTypeAll, false)
			return err
		},
		"an unknown bill type": func() error { _, err := c.TradeBill(ctx, "2026-05-20", "RECHARGE_REFUND", false); return err },
		"an unknown account":   func() error { _, err := c.FundFlowBill(ctx, "2026-05-20", "basic", false); return err },
		"an empty date":        func() error { _, err := c.FundFlowBill(ctx, "", wxpay.AccountBasic, false); return err },
	} {
		t.Run(name+" is refused before sending", func(t *testing.T) {
			if err := call(); !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("%v", err)
			}
			if code, definitive := Outcome(call()); code != OutcomeNotSent || !definitive {
				t.Fatal(code)
			}
		})
	}
	if n := len(f.recordedRequests()); n != 0 {
		t.Fatalf("%d requests sent", n)
	}

	info := func(body string, o answerOpts) route {
		return func(*recorded) (int, []byte, answerOpts) { return 200, []byte(body), o }
	}
	good := `{"hash_type":"SHA1","hash_value":"79bb0f45fc4c42234a918000b2668d689e2bde04","download_url":"http://wechat.test/v3/billdownload/file?token=x"}`
	for _, tc := range []struct {
		name string
		r    route
		want error
	}{
		{"an unsigned answer", info(good, answerOpts{unsigned: true}), ErrUnsignedResponse},
		{"a tampered answer", info(good, answerOpts{tamper: true}), ErrUnsignedResponse},
		{"an MD5 digest", info(strings.Replace(good, "SHA1", "MD5", 1), answerOpts{}), ErrBadResponse},
		{"a short digest", info(strings.Replace(good, "79bb", "", 1), answerOpts{}), ErrBadResponse},
		{"no download_url", info(`{"hash_type":"SHA1","hash_value":"79bb0f45fc4c42234a918000b2668d689e2bde04"}`, answerOpts{}), ErrBadResponse},
		{"not JSON", info(`hash_type=SHA1`, answerOpts{}), ErrBadResponse},
	} {
		t.Run(tc.name+" fails", func(t *testing.T) {
			f.setRoute("GET", pathTradeBill, tc.r)
			_, err := c.TradeBill(ctx, "2026-05-20", wxpay.BillTypeAll, false)
			if !errors.Is(err, tc.want) {
				t.Fatalf("%v, want %v", err, tc.want)
			}
			f.assertNoSecrets(t, err)
		})
	}
	for _, code := range []string{wxpay.CodeNoStatementExist, wxpay.CodeStatementCreating} {
		t.Run("400 "+code+" is WeChat's definitive refusal", func(t *testing.T) {
			f.setRoute("GET", pathTradeBill, func(*recorded) (int, []byte, answerOpts) {
				return 400, []byte(`{"code":"` + code + `","message":"请求的账单文件不存在"}`), answerOpts{}
			})
			_, err := c.TradeBill(ctx, "2026-05-20", wxpay.BillTypeAll, false)
			if got, definitive := Outcome(err); got != code || !definitive {
				t.Fatalf("%v: %s %v", err, got, definitive)
			}
		})
	}
}

// downloadAll downloads info and reads the stream to its end.
func downloadAll(t *testing.T, c *Client, info wxpay.BillInfo) ([]byte, error, error) {
	t.Helper()
	rc, err := c.DownloadBill(context.Background(), info)
	if err != nil {
		return nil, err, nil
	}
	b, rerr := io.ReadAll(rc)
	return b, rerr, rc.Close()
}

func TestDownloadBill(t *testing.T) {
	t.Parallel()
	data := billSample(t)
	sum := sha1Hex(data)
	ctx := context.Background()
	t.Run("a plain bill streams, verifies and parses", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		billRoutes(f, sum, data)
		var observed atomic.Value
		c := newTestClient(t, f, Config{}, nil, WithObserver(func(op string, status int, _ time.Duration, err error) {
			if op == "bill.download" {
				observed.Store([2]any{status, err})
			}
		}))
		info, err := c.TradeBill(ctx, "2021-01-28", wxpay.BillTypeAll, false)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := c.DownloadBill(ctx, info)
		if err != nil {
			t.Fatal(err)
		}
		var rows int
		sumRow, typ, err := wxpay.ParseTradeBill(rc, wxpay.BillTypeAll, func(*wxpay.TradeBillRow) error { rows++; return nil })
		if err != nil || typ != wxpay.BillTypeAll || rows != 3 || sumRow.Total != 3 {
			t.Fatalf("%v %s %d %+v", err, typ, rows, sumRow)
		}
		if n, err := rc.Read(make([]byte, 4)); n != 0 || err != io.EOF {
			t.Fatalf("after the end: %d %v", n, err)
		}
		if err := rc.Close(); err != nil {
			t.Fatal(err)
		}
		r := f.lastRequest(t)
		if r.uri != pathBillDownload+"?token=g44bIUH1Gy_oZq6Aalf-gQP%2FlJ" || r.authErr != nil || r.header["Authorization"] == "" {
			t.Fatalf("download request %s: %v", r.uri, r.authErr)
		}
		if o, _ := observed.Load().([2]any); o[0] != 200 || o[1] != nil {
			t.Fatalf("observed %v", o)
		}
	})
	t.Run("a gzipped bill is un-gzipped and its digest is of the plain bill", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		billRoutes(f, sum, gzipped(t, data))
		c := newTestClient(t, f, Config{}, nil)
		info, err := c.TradeBill(ctx, "2021-01-28", wxpay.BillTypeAll, true)
		if err != nil {
			t.Fatal(err)
		}
		got, rerr, cerr := downloadAll(t, c, info)
		if rerr != nil || cerr != nil || !bytes.Equal(got, data) {
			t.Fatalf("%v %v %d bytes", rerr, cerr, len(got))
		}
		if !strings.Contains(f.lastRequest(t).uri, "tartype=gzip") {
			t.Fatal(f.lastRequest(t).uri)
		}
	})
	for _, tc := range []struct {
		name string
		body func([]byte) []byte
		gzip bool
		want error
	}{
		{"one changed byte", func(b []byte) []byte { b = bytes.Clone(b); b[len(b)/2] ^= 1; return b }, false, wxpay.ErrBillDigest},
		{"a cut file", func(b []byte) []byte { return b[:len(b)-3] }, false, wxpay.ErrBillDigest},
		{"an extra line", func(b []byte) []byte { return append(bytes.Clone(b), '\n') }, false, wxpay.ErrBillDigest},
		{"a gzipped bill with one changed byte", func(b []byte) []byte { b = bytes.Clone(b); b[0] ^= 1; return b }, true, wxpay.ErrBillDigest},
		{"a broken gzip stream", func(b []byte) []byte { return []byte("not gzip at all, not gzip at all") }, true, ErrBadResponse},
	} {
		t.Run(tc.name+" fails the download", func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			body := tc.body(data)
			if tc.gzip {
				body = gzipped(t, body)
				if tc.want == ErrBadResponse {
					body = tc.body(nil)
				}
			}
			billRoutes(f, sum, body)
			c := newTestClient(t, f, Config{}, nil)
			info, err := c.TradeBill(ctx, "2021-01-28", wxpay.BillTypeAll, tc.gzip)
			if err != nil {
				t.Fatal(err)
			}
			got, rerr, cerr := downloadAll(t, c, info)
			if !errors.Is(rerr, tc.want) {
				t.Fatalf("read: %v (%d bytes), want %v", rerr, len(got), tc.want)
			}
			if tc.want == wxpay.ErrBillDigest && !errors.Is(cerr, wxpay.ErrBillDigest) {
				t.Fatalf("Close: %v, want ErrBillDigest too", cerr)
			}
			if tc.want != wxpay.ErrBillDigest && cerr != nil {
				t.Fatalf("Close: %v", cerr)
			}
			f.assertNoSecrets(t, rerr)
		})
	}
	t.Run("a corrupt bill that parses is still caught, by its digest", func(t *testing.T) {
		t.Parallel()
		// The first row's trade time moves by a second: every row and the
		// summary stay consistent, only the digest tells.
		bad := bytes.Replace(data, []byte("17:07:11"), []byte("17:07:12"), 1)
		f := newFake(t)
		billRoutes(f, sum, bad)
		c := newTestClient(t, f, Config{}, nil)
		info, _ := c.TradeBill(ctx, "2021-01-28", wxpay.BillTypeAll, false)
		rc, err := c.DownloadBill(ctx, info)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		rows := 0
		_, _, err = wxpay.ParseTradeBill(rc, wxpay.BillTypeAll, func(*wxpay.TradeBillRow) error { rows++; return nil })
		if !errors.Is(err, wxpay.ErrBillDigest) || rows != 3 {
			t.Fatalf("%v after %d rows", err, rows)
		}
	})
	t.Run("a download_url on another host is refused before sending", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		c := newTestClient(t, f, Config{}, nil)
		for _, u := range []string{"https://wechat.test/v3/billdownload/file?token=x", "http://evil.test/v3/billdownload/file?token=x",
			"http://wechat.test:8080/v3/billdownload/file?token=x"} {
			_, err := c.DownloadBill(ctx, wxpay.BillInfo{HashType: "SHA1", HashValue: sum, DownloadURL: u})
			if !errors.Is(err, ErrInvalidRequest) || strings.Contains(err.Error(), "token") {
				t.Fatalf("%s: %v", u, err)
			}
		}
		if _, err := c.DownloadBill(ctx, wxpay.BillInfo{HashType: "MD5", HashValue: sum, DownloadURL: testBaseURL + "/x"}); !errors.Is(err, ErrInvalidRequest) {
			t.Fatal(err)
		}
		if n := len(f.recordedRequests()); n != 0 {
			t.Fatalf("%d requests sent", n)
		}
	})
	t.Run("an error answer is WeChat's error", func(t *testing.T) {
		t.Parallel()
		f := newFake(t)
		c := newTestClient(t, f, Config{}, nil)
		info := wxpay.BillInfo{HashType: "SHA1", HashValue: sum, DownloadURL: testBaseURL + pathBillDownload + "?token=old"}
		f.setRoute("GET", pathBillDownload, func(*recorded) (int, []byte, answerOpts) {
			return 400, []byte(`{"code":"INVALID_REQUEST","message":"下载链接已过期"}`), answerOpts{}
		})
		_, err := c.DownloadBill(ctx, info)
		if code, definitive := Outcome(err); code != wxpay.CodeInvalidRequest || !definitive {
			t.Fatalf("%v", err)
		}
		f.setRoute("GET", pathBillDownload, func(*recorded) (int, []byte, answerOpts) {
			return 502, []byte(`<html>bad gateway</html>`), answerOpts{unsigned: true}
		})
		_, err = c.DownloadBill(ctx, info)
		var apiErr *wxpay.APIError
		if !errors.Is(err, ErrUnsignedResponse) || !errors.As(err, &apiErr) || apiErr.Status != 502 {
			t.Fatalf("%v", err)
		}
	})
}

// slowBillServer serves a bill of n rows slowly, row by row, on an
// in-memory listener; hold blocks it after the first rows until released.
type slowBillServer struct {
	ln    *fasthttputil.InmemoryListener
	hold  chan struct{}
	sent  atomic.Int64
	keys  *testKeySet
	rows  int
	after int // rows before holding
}

func newSlowBillServer(t *testing.T, rows, after int) *slowBillServer {
	s := &slowBillServer{ln: fasthttputil.NewInmemoryListener(), hold: make(chan struct{}), keys: testKeys(t), rows: rows, after: after}
	srv := &fasthttp.Server{Handler: s.handle, Logger: quietLogger{}}
	go srv.Serve(s.ln)
	t.Cleanup(func() {
		select {
		case <-s.hold:
		default:
			close(s.hold)
		}
		srv.Shutdown()
		s.ln.Close()
	})
	return s
}

func (s *slowBillServer) handle(ctx *fasthttp.RequestCtx) {
	if err := checkAuthorization(string(ctx.Request.Header.Peek("Authorization")), "GET", string(ctx.RequestURI()), nil,
		&s.keys.merchant.PublicKey, time.Now()); err != nil {
		ctx.SetStatusCode(401)
		return
	}
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		bw, _ := wxpay.NewTradeBillWriter(w, wxpay.BillTypeSuccess)
		row := wxpay.TradeBillRow{TradeTime: time.Now(), MchID: testMchID, TransactionID: "4200", OutTradeNo: "T0001",
			TradeState: "SUCCESS", Total: 1, RatePPM: 6000}
		for i := range s.rows {
			if i == s.after {
				w.Flush()
				<-s.hold
			}
			if bw.Write(&row) != nil {
				return
			}
			s.sent.Add(1)
		}
		bw.Close()
	})
}

func TestDownloadBillEndsWithItsContextOrDeadline(t *testing.T) {
	t.Parallel()
	info := wxpay.BillInfo{HashType: "SHA1", HashValue: strings.Repeat("0", 40), DownloadURL: testBaseURL + pathBillDownload + "?token=t"}
	newClient := func(t *testing.T, s *slowBillServer) *Client {
		c, err := New(Config{BaseURL: testBaseURL}, testKeys(t).signer, wxpay.NewVerifier(keySetWith(t, testKeys(t).a)),
			WithDial(func(string) (net.Conn, error) { return s.ln.Dial() }))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		stop func(context.CancelFunc)
		want error
	}{
		{"a cancelled context cuts a stalled download",
			func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			func(cancel context.CancelFunc) { time.AfterFunc(50*time.Millisecond, cancel) }, context.Canceled},
		{"a context deadline cuts a stalled download",
			func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 200*time.Millisecond)
			},
			func(context.CancelFunc) {}, ErrTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSlowBillServer(t, 1000, 10)
			c := newClient(t, s)
			ctx, cancel := tc.ctx()
			defer cancel()
			rc, err := c.DownloadBill(ctx, info)
			if err != nil {
				t.Fatal(err)
			}
			tc.stop(cancel)
			start := time.Now()
			_, err = io.ReadAll(rc)
			if !errors.Is(err, tc.want) || time.Since(start) > 5*time.Second {
				t.Fatalf("%v after %v, want %v", err, time.Since(start), tc.want)
			}
			if cerr := rc.Close(); cerr != nil {
				t.Fatalf("Close: %v", cerr)
			}
			sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer scancel()
			if err := c.Close(sctx); err != nil {
				t.Fatalf("Shutdown waits for the cut download: %v", err)
			}
		})
	}
	t.Run("Close before the end returns nil and frees the client", func(t *testing.T) {
		t.Parallel()
		s := newSlowBillServer(t, 1000, 10)
		c := newClient(t, s)
		rc, err := c.DownloadBill(context.Background(), info)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rc.Read(make([]byte, 16)); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { _, err := io.ReadAll(rc); done <- err }()
		time.Sleep(20 * time.Millisecond)
		if err := rc.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := <-done; err == nil || errors.Is(err, wxpay.ErrBillDigest) {
			t.Fatalf("the blocked Read ended with %v", err)
		}
		if err := rc.Close(); err != nil {
			t.Fatalf("a second Close: %v", err)
		}
		sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer scancel()
		if err := c.Close(sctx); err != nil {
			t.Fatal(err)
		}
		if _, err := c.DownloadBill(context.Background(), info); !errors.Is(err, ErrClosed) {
			t.Fatalf("after Shutdown: %v", err)
		}
	})
	t.Run("a stream never read nor closed does not hold Shutdown past its deadline", func(t *testing.T) {
		t.Parallel()
		s := newSlowBillServer(t, 1000, 10)
		c := newClient(t, s)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		rc, err := c.DownloadBill(ctx, info)
		if err != nil {
			t.Fatal(err)
		}
		sctx, scancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer scancel()
		if err := c.Close(sctx); err != nil {
			t.Fatal(err)
		}
		if _, err := rc.Read(make([]byte, 1)); !errors.Is(err, ErrTimeout) {
			t.Fatalf("%v", err)
		}
	})
}
