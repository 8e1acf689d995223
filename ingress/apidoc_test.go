package ingress

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/wxpay"
)

// TestAPIDocExamples runs the examples of docs/api.md, in the page's
// order, with bash against a real stack (newStack: wxpayd serving on a
// 127.0.0.1 port, wxpaysim playing WeChat), and checks every answer.
//
// The page's convention:
//
//   - An example is a ```sh block whose opening fence follows the line
//     `<!-- test: NAME -->`. It makes one `curl -sS -i` call, so its output
//     is an HTTP response: status line, headers, body.
//   - A ```sh block that is no example follows `<!-- untested: why -->`;
//     any other ```sh block fails the test, so none is left out unnoticed.
//   - A ```json block after an example, before the next example or
//     heading, is that example's answer body as the page shows it: every
//     field it shows, at any depth (an array by its first element), must be
//     in the real answer with the same JSON type.
//
// Each example runs in its own `bash -eu -c` with only PATH, LANG and the
// variables: those of the page's table (WXPAYD, SIM, ADMIN_TOKEN,
// SHOP_TOKEN) and those the checks of earlier examples took from their
// answers (CODE, TOKEN, OTN ...). The check of an example's NAME, in
// apiDocChecks, asserts its status and key fields and returns the
// variables it yields. An example without a check, or a check without an
// example, fails the test.
func TestAPIDocExamples(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("the examples need curl: ", err)
	}
	page, err := os.ReadFile("../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	examples, err := parseAPIDoc(string(page))
	if err != nil {
		t.Fatal(err)
	}
	checks := apiDocChecks()
	var names []string
	for _, ex := range examples {
		if checks[ex.name] == nil {
			t.Errorf("docs/api.md:%d: example %q has no check in apiDocChecks", ex.line, ex.name)
		}
		names = append(names, ex.name)
	}
	for name := range checks {
		if !slices.Contains(names, name) {
			t.Errorf("check %q has no example in docs/api.md", name)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	s := newStack(t, stackOpts{})
	vars := map[string]string{"WXPAYD": s.url, "SIM": s.sim.URL(), "ADMIN_TOKEN": s.admin, "SHOP_TOKEN": shopToken}
	for _, ex := range examples {
		out, err := runExample(ex.script, vars)
		if err != nil {
			t.Fatalf("docs/api.md:%d: example %q: %v\n%s", ex.line, ex.name, err, out)
		}
		a, err := parseAnswer(out)
		if err != nil {
			t.Fatalf("docs/api.md:%d: example %q: %v\n%s", ex.line, ex.name, err, out)
		}
		got, err := checks[ex.name](s, vars, a)
		if err != nil {
			t.Fatalf("docs/api.md:%d: example %q: %v\nanswer: %d %s", ex.line, ex.name, err, a.status, a.body)
		}
		if ex.answer != "" {
			if err := shownFieldsPresent(ex.answer, a.body); err != nil {
				t.Fatalf("docs/api.md:%d: example %q: the answer shown after it: %v\nreal answer: %s", ex.line, ex.name, err, a.body)
			}
		}
		for k, v := range got {
			vars[k] = v
		}
	}
}

// docExample is one example of docs/api.md.
type docExample struct {
	name   string
	line   int    // of the opening fence
	script string // the block's lines
	answer string // the ```json block after it, or ""
}

var (
	testComment     = regexp.MustCompile(`^<!-- test: ([a-z0-9-]+) -->$`)
	untestedComment = regexp.MustCompile(`^<!-- untested: .+ -->$`)
)

// parseAPIDoc returns the examples of the page, in order (see
// TestAPIDocExamples for the convention).
func parseAPIDoc(page string) ([]docExample, error) {
	lines := strings.Split(page, "\n")
	var out []docExample
	seen := map[string]bool{}
	open := -1 // index in out of the example whose answer may follow
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.HasPrefix(l, "#") || testComment.MatchString(l) {
			open = -1
		}
		if !strings.HasPrefix(l, "```") {
			continue
		}
		lang := strings.TrimPrefix(l, "```")
		end := i + 1
		for end < len(lines) && lines[end] != "```" {
			end++
		}
		if end == len(lines) {
			return nil, fmt.Errorf("docs/api.md:%d: a fence that is not closed", i+1)
		}
		body := strings.Join(lines[i+1:end], "\n")
		prev := ""
		if i > 0 {
			prev = lines[i-1]
		}
		switch m := testComment.FindStringSubmatch(prev); {
		case lang == "sh" && m != nil:
			if seen[m[1]] {
				return nil, fmt.Errorf("docs/api.md:%d: a second example named %q", i+1, m[1])
			}
			seen[m[1]] = true
			out = append(out, docExample{name: m[1], line: i + 1, script: body})
			open = len(out) - 1
		case lang == "sh" && !untestedComment.MatchString(prev):
			return nil, fmt.Errorf("docs/api.md:%d: a sh block with neither <!-- test: name --> nor <!-- untested: why --> on the line before", i+1)
		case lang == "json" && open >= 0:
			out[open].answer = body
			open = -1
		default:
			open = -1
		}
		i = end
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("docs/api.md has no examples")
	}
	return out, nil
}

// runExample runs one example's script with bash and returns its output.
func runExample(script string, vars map[string]string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-eu", "-o", "pipefail", "-c", script)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LANG=C.UTF-8"}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return append(out, stderr.Bytes()...), err
	}
	return out, nil
}

// docAnswer is an example's HTTP answer as curl -i printed it.
type docAnswer struct {
	status int
	header http.Header
	body   []byte
}

func parseAnswer(out []byte) (docAnswer, error) {
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(out)), nil)
	if err != nil {
		return docAnswer{}, fmt.Errorf("the output is not an HTTP answer (is it curl -i?): %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return docAnswer{}, err
	}
	return docAnswer{resp.StatusCode, resp.Header, body}, nil
}

// shownFieldsPresent checks that every field of the answer shown is in
// the real answer, with the same JSON type.
func shownFieldsPresent(shown string, real []byte) error {
	var s, r any
	if err := json.Unmarshal([]byte(shown), &s); err != nil {
		return fmt.Errorf("it is not JSON: %w", err)
	}
	if err := json.Unmarshal(real, &r); err != nil {
		return fmt.Errorf("the real answer is not JSON: %w", err)
	}
	return sameShape("$", s, r)
}

func sameShape(path string, shown, real any) error {
	if fmt.Sprintf("%T", shown) != fmt.Sprintf("%T", real) {
		return fmt.Errorf("%s: shown as %T, answered as %T", path, shown, real)
	}
	switch s := shown.(type) {
	case map[string]any:
		r := real.(map[string]any)
		for k, v := range s {
			rv, ok := r[k]
			if !ok {
				return fmt.Errorf("%s.%s: shown, not in the answer", path, k)
			}
			if err := sameShape(path+"."+k, v, rv); err != nil {
				return err
			}
		}
	case []any:
		r := real.([]any)
		if len(s) > 0 && len(r) == 0 {
			return fmt.Errorf("%s: shown with elements, answered empty", path)
		}
		if len(s) > 0 {
			return sameShape(path+"[0]", s[0], r[0])
		}
	}
	return nil
}

// docCheck checks an example's answer and returns the variables it yields
// to the examples after it.
type docCheck func(s *stack, vars map[string]string, a docAnswer) (map[string]string, error)

// docView is what the checks read of the answers.
type docView struct {
	Token      string `json:"token"`
	ExpiresIn  int64  `json:"expires_in"`
	Code       string `json:"code"`
	OpenID     string `json:"openid"`
	OutTradeNo string `json:"out_trade_no"`
	State      string `json:"state"`
	SKU        string `json:"sku"`
	Quantity   int64  `json:"quantity"`
	Stock      int64  `json:"stock"`
	Amount     struct {
		Total int64 `json:"total"`
	} `json:"amount"`
	Payment       *wxpay.PayParams `json:"payment"`
	TransactionID string           `json:"transaction_id"`
	ShopOrderID   string           `json:"shop_order_id"`
	Orders        []struct {
		OutTradeNo string `json:"out_trade_no"`
		State      string `json:"state"`
	} `json:"orders"`
	NextCursor *string `json:"next_cursor"`
	Order      struct {
		OutTradeNo string `json:"out_trade_no"`
		State      string `json:"state"`
		Refunds    []struct {
			Amount int64  `json:"amount"`
			Status string `json:"status"`
		} `json:"refunds"`
	} `json:"order"`
	Events []struct {
		Type string `json:"type"`
	} `json:"events"`
	Error struct {
		Code string `json:"code"`
	} `json:"error"`
}

// view decodes the answer after checking its status.
func (a docAnswer) view(status int) (docView, error) {
	var v docView
	if a.status != status {
		return v, fmt.Errorf("status %d, want %d", a.status, status)
	}
	if err := json.Unmarshal(a.body, &v); err != nil {
		return v, fmt.Errorf("the answer is not JSON: %w", err)
	}
	return v, nil
}

// paid checks a buyer's order view with payment parameters that verify.
func paid(s *stack, v docView, otn string) error {
	if v.OutTradeNo != otn || v.State != "PREPAID" || v.Payment == nil || !strings.HasPrefix(v.Payment.Package, "prepay_id=") {
		return fmt.Errorf("want %s PREPAID with payment parameters", otn)
	}
	return verifyPaySign(s.id, *v.Payment)
}

func apiDocChecks() map[string]docCheck {
	return map[string]docCheck{
		"put-sku": func(s *stack, _ map[string]string, a docAnswer) (map[string]string, error) {
			v, err := a.view(200)
			if err == nil && (v.SKU != "tea" || v.Stock != 100) {
				err = fmt.Errorf("want the SKU tea with stock 100")
			}
			return nil, err
		},
		"sim-code": func(s *stack, _ map[string]string, a docAnswer) (map[string]string, error) {
			v, err := a.view(200)
			if err == nil && (!strings.HasPrefix(v.Code, "code-alice.") || v.OpenID == "") {
				err = fmt.Errorf("want a code of alice and an openid")
			}
			return map[string]string{"CODE": v.Code, "OPENID": v.OpenID}, err
		},
		"login": func(s *stack, vars map[string]string, a docAnswer) (map[string]string, error) {
			v, err := a.view(200)
			if err == nil && (v.Token == "" || v.ExpiresIn != 7200 || s.openid(v.Token) != vars["OPENID"]) {
				err = fmt.Errorf("want a 2-hour session of the code's openid")
			}
			return map[string]string{"TOKEN": v.Token}, err
		},
		"create-order": func(s *stack, _ map[string]string, a docAnswer) (map[string]string, error) {
			v, err := a.view(201)
			if err == nil && (v.SKU != "tea" || v.Quantity != 1 || v.Amount.Total != 888) {
				err = fmt.Errorf("want one tea for 888 fen")
			}
			if err == nil {
				err = paid(s, v, v.OutTradeNo)
			}
			if err != nil {
				return nil, err
			}
			return map[string]string{"OTN": v.OutTradeNo, "PREPAY_ID": strings.TrimPrefix(v.Payment.Package, "prepay_id=")}, nil
		},
		"create-order-again": func(s *stack, vars map[string]string, a docAnswer) (map[string]string, error) {
			v, err := a.view(200)
			if err == nil {
				err = paid(s, v, vars["OTN"])
			}
			return nil, err
		},
		"get-order": func(s *stack, vars map[string]string, a docAnswer) (map[string]string, error) {
			v, err := a.view(200)
			if err == nil && (v.OutTradeNo != vars["OTN"] || v.State != "PREPAID" || v.Payment != nil) {
				err = fmt.Errorf("want the order, PREPAID, without payment parameters")
			}
			return nil, err
		},
		"payment": func(s *stack, vars map[string]string, a docAnswer) (map[string]string, error) {
			v, err := a.view(200)
			if err == nil {
				err = paid(s, v, vars["OTN"])
			}
			if err == nil && v.Payment.Package != "prepay_id="+vars["PREPAY_ID"] {
				err = fmt.Errorf("want the same prepay")
			}
			return nil, err
		},
		"sim-pay": func(s *stack, vars map[string]string, a docAnswer) (map[string]string, error) {
			v, err := a.view(201)
			if err == nil && v.TransactionID == "" {
				err = fmt.Errorf("want a transaction_id")
			}
			if err != nil {
				return nil, err
			}
			// "The order becomes PAID a moment later."
			for end := time.Now().Add(15 * time.Second); s.get(vars["TOKEN"], vars["OTN"]).State != "PAID"; {
				if time.Now().After(end) {
					return nil, fmt.Errorf("the order is not PAID 15 s after the payment")
				}
				time.Sleep(10 * time.Millisecond)
			}
			return nil, nil
		},
		"checkout": func(s *stack, vars map[string]string, a docAnswer) (map[string]string, error) {
			v, err := a.view(201)
			if err == nil && (v.ShopOrderID != "A-1001" || v.Amount.Total != 3000 || !strings.HasPrefix(v.OutTradeNo, "01S")) {
				err = fmt.Errorf("want the shop's order A-1001 of 3000 fen")
			}
			if err == nil {
				err = paid(s, v, v.OutTradeNo)
			}
			if err == nil && s.openid(vars["TOKEN"]) != vars["OPENID"] {
				err = fmt.Errorf("the session is not the buyer's")
			}
			return map[string]string{"SHOP_OTN": v.OutTradeNo}, err
		},
		"list-own": func(s *stack, vars map[string]string, a docAnswer) (map[string]string, error) {
			v, err := a.view(200)
			if err == nil && (len(v.Orders) != 1 || v.Orders[0].OutTradeNo != vars["SHOP_OTN"] || v.NextCursor == nil) {
				err = fmt.Errorf("want the checkout's order and a next_cursor")
			}
			if err != nil {
				return nil, err
			}
			return map[string]string{"CURSOR": *v.NextCursor}, nil
		},
		"list-own-next": func(s *stack, vars map[string]string, a docAnswer) (map[string]string, error) {
			v, err := a.view(200)
			if err == nil && (len(v.Orders) != 1 || v.Orders[0].OutTradeNo != vars["OTN"] || v.NextCursor != nil) {
				err = fmt.Errorf("want the first order alone, the last page")
			}
			return nil, err
		},
		"admin-list": func(s *stack, vars map[string]string, a docAnswer) (map[string]string, error) {
			v, err := a.view(200)
			if err == nil && (len(v.Orders) != 1 || v.Orders[0].OutTradeNo != vars["OTN"] || v.Orders[0].State != "PAID") {
				err = fmt.Errorf("want the one PAID order")
			}
			return nil, err
		},
		"admin-order": func(s *stack, vars map[string]string, a docAnswer) (map[string]string, error) {
			v, err := a.view(200)
			var types []string
			for _, e := range v.Events {
				types = append(types, e.Type)
			}
			if err == nil && (v.Order.OutTradeNo != vars["OTN"] || v.Order.State != "PAID" ||
				strings.Join(types, ",") != "order.created,order.prepaid,order.paid") {
				err = fmt.Errorf("want the PAID order and its history, got %v", types)
			}
			return nil, err
		},
		"refund": func(s *stack, vars map[string]string, a docAnswer) (map[string]string, error) {
			v, err := a.view(200)
			// WeChat's notification of the refund's success may be in
			// before the answer to its create: then the order is REFUNDED.
			if err == nil && (v.Order.OutTradeNo != vars["OTN"] || v.Order.State != "REFUNDING" && v.Order.State != "REFUNDED" ||
				len(v.Order.Refunds) != 1 || v.Order.Refunds[0].Amount != 888) {
				err = fmt.Errorf("want the order REFUNDING (or already REFUNDED) with one refund of 888 fen")
			}
			return nil, err
		},
		"key-reused": func(s *stack, vars map[string]string, a docAnswer) (map[string]string, error) {
			v, err := a.view(422)
			if err == nil && v.Error.Code != "IDEMPOTENCY_KEY_REUSED" {
				err = fmt.Errorf("want IDEMPOTENCY_KEY_REUSED")
			}
			return nil, err
		},
	}
}
