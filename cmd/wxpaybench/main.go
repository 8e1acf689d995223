// Command wxpaybench runs flash-sale, steady, notify-storm and mixed load
// against a running wxpayd stack, audits the end state and writes JSON and
// HTML reports; see package github.com/wxpayd/wxpayd/bench/load.
//
//	wxpaybench --admin-token-file F --scenario flash-sale --buyers 2000 --stock 200 --out bench/out/flash
//
// Exit codes: 0 the audit passed, 1 it failed, 2 bad command line, 3 the
// stack could not be used, 4 interrupted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"

	"github.com/wxpayd/wxpayd/bench/load"
)

// Exit codes.
const (
	exitOK          = 0
	exitAuditFailed = 1
	exitUsage       = 2
	exitStack       = 3
	exitInterrupted = 4
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// listFlag collects a repeatable, comma-separated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// pidFlag collects name=pid pairs.
type pidFlag map[string]int

func (p pidFlag) String() string { return fmt.Sprint(map[string]int(p)) }
func (p pidFlag) Set(v string) error {
	name, num, ok := strings.Cut(v, "=")
	n, err := strconv.Atoi(num)
	if !ok || name == "" || err != nil || n <= 0 {
		return errors.New("want NAME=PID")
	}
	p[name] = n
	return nil
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wxpaybench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c load.Config
	var targets listFlag
	pids := pidFlag{}
	fs.Var(&targets, "target", "wxpayd base URL; repeat or comma-separate for several nodes (default "+load.DefaultTarget+")")
	fs.StringVar(&c.Sim, "sim", load.DefaultSim, "wxpaysim base URL")
	fs.StringVar(&c.AdminTokenFile, "admin-token-file", "", "file holding wxpayd's admin token (WXPAYD_ADMIN_TOKEN_FILE; required)")
	fs.StringVar(&c.ClickHouse, "clickhouse", "", "ClickHouse native address, e.g. 127.0.0.1:19000; empty skips the ClickHouse audit")
	fs.StringVar(&c.ClickHouseDB, "clickhouse-db", load.DefaultClickHouseDB, "ClickHouse database the sink writes")
	fs.StringVar(&c.Out, "out", "", "folder for results.json, report.html and summary.md")
	fs.StringVar(&c.Scenario, "scenario", load.ScenarioFlashSale, "flash-sale, steady, notify-storm or mixed")
	fs.StringVar(&c.API, "api", load.APIv3, "the merchant API wxpayd runs (its WXPAY_API), v3 or v2; the audit checks every order and paySign went through it")
	fs.IntVar(&c.Buyers, "buyers", 1000, "flash-sale / notify-storm buyers (mixed: the flash part)")
	fs.IntVar(&c.Stock, "stock", 0, "units of the flash SKU (0: 100; notify-storm: --buyers; steady: every arrival)")
	fs.Float64Var(&c.PayShare, "pay-share", -1, "share of buyers holding an order who pay, 0..1 (default 0.8; notify-storm 1)")
	fs.Float64Var(&c.Rate, "rate", 0, "arrivals per second for steady, mixed, notify-storm and --arrival rate (default 100; notify-storm 200)")
	fs.DurationVar(&c.Duration, "duration", 0, "how long steady and mixed arrive (default 20s)")
	fs.IntVar(&c.Connections, "connections", load.DefaultConnections, "connections per pool: each wxpayd node has one for logins and prepays and one for polls; wxpaysim one")
	fs.StringVar(&c.Arrival, "arrival", "", "flash buyers arrive as a burst, a ramp (over --ramp) or at --rate (default burst; notify-storm rate)")
	fs.DurationVar(&c.Ramp, "ramp", 0, "spread of --arrival ramp (default 5s)")
	fs.DurationVar(&c.MaxTime, "max-time", load.DefaultMaxTime, "hard bound on the whole run, audit included")
	fs.DurationVar(&c.Timeout, "timeout", load.DefaultTimeout, "bound on one request, waiting for a connection included")
	fs.IntVar(&c.Retries, "retries", load.DefaultRetries, "retries of a prepay answered 429/503, after Retry-After (-1: none)")
	fs.DurationVar(&c.PaidTimeout, "paid-timeout", load.DefaultPaidTimeout, "how long a buyer polls for PAID after paying")
	fs.DurationVar(&c.PollInterval, "poll-interval", load.DefaultPollInterval, "first wait between polls (doubles up to 4x)")
	fs.DurationVar(&c.AuditTimeout, "audit-timeout", load.DefaultAuditTimeout, "bound on the notification drain and on ClickHouse catching up")
	fs.BoolVar(&c.AwaitTTL, "await-ttl", false, "wait until unpaid orders pass their TTL and check they were closed (use a short WXPAYD_ORDER_TTL)")
	fs.DurationVar(&c.TTLGrace, "ttl-grace", load.DefaultTTLGrace, "how late past its TTL an unpaid order may still be open")
	fs.IntVar(&c.MaxInFlight, "max-in-flight", load.DefaultMaxInFlight, "bound on buyers in flight")
	fs.IntVar(&c.PerBuyerLimit, "per-buyer-limit", 1, "the SKUs' per-buyer limit (-1: none)")
	fs.Float64Var(&c.RefundShare, "refund-share", 0, "share of paid orders the admin refunds once the buyer saw PAID, half in full, half in part, 0..1;\nthe audit compares every refund with wxpaysim's")
	fs.StringVar(&c.SimFaults, "sim-faults", "", "wxpaysim API faults for the timed window, as its --faults SPEC: endpoint.kind=rate,...\n(endpoints prepay, query, close, refund, refund_query, certificates, login, all;\nkinds system_error, rate_limited, bad_gateway, slow, lost), e.g. all.system_error=0.05,refund.lost=0.1;\nset with PUT /sim/v1/faults and restored before the audit (slow answers wait wxpaysim's --slow-delay)")
	fs.StringVar(&c.SimRefundOutcomes, "sim-refund-outcomes", "", "wxpaysim refund outcomes for the timed window, as its --refund-outcomes SPEC2,\ne.g. success=0.8,closed=0.1,abnormal=0.1; restored before the audit")
	fs.Int64Var(&c.Price, "price", load.DefaultPrice, "unit price in fen")
	fs.StringVar(&c.RunID, "run-id", "", "names the run's SKUs and login codes, [0-9a-z]{1,24} (default from the clock)")
	fs.Int64Var(&c.Seed, "seed", 0, "seed of who pays (0: from the clock)")
	fs.Var(pids, "watch-pid", "NAME=PID of a local process whose CPU time the report shows (repeatable)")
	fs.BoolVar(&c.AllowRemote, "allow-remote", false, "allow non-loopback targets")
	quiet := fs.Bool("quiet", false, "no live progress")
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: wxpaybench --admin-token-file F [flags]

Runs a scenario against a running wxpayd and wxpaysim, audits the end state
(no oversell; wxpaysim's payments = wxpayd's PAID orders = units sold; no
order open past its TTL; forged notifications rejected; none lost; with
--refund-share, wxpayd's refunds = wxpaysim's) and writes the reports.
With --sim-faults and --sim-refund-outcomes wxpaysim fails WeChat calls and
refunds during the timed window, so the same audit covers failing WeChat.

`)
		fs.PrintDefaults()
	}
	cpuProfile := fs.String("cpu-profile", "", "write the generator's CPU profile to this file (to check it is not the bottleneck)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "wxpaybench: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	c.Targets = targets
	c.WatchPIDs = pids
	c.Command = "wxpaybench " + strings.Join(args, " ")
	if !*quiet {
		c.Progress = stderr
		if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 && stderr == os.Stderr {
			c.ProgressTTY = true
		}
	}
	if err := c.Validate(); err != nil {
		fmt.Fprintln(stderr, "wxpaybench:", err)
		return exitUsage
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "wxpaybench: --cpu-profile:", err)
			return exitUsage
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "wxpaybench: --cpu-profile:", err)
			return exitUsage
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, err := load.Run(ctx, c)
	if res != nil {
		fmt.Fprint(stdout, load.Markdown(res))
		if c.Out != "" {
			fmt.Fprintf(stdout, "\nreports: %s, %s\n", filepath.Join(c.Out, load.FileHTML), filepath.Join(c.Out, load.FileJSON))
		}
	}
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, load.ErrAuditFailed):
		fmt.Fprintln(stderr, "wxpaybench: audit failed")
		return exitAuditFailed
	case errors.Is(err, load.ErrConfig):
		fmt.Fprintln(stderr, "wxpaybench:", err)
		return exitUsage
	case ctx.Err() != nil:
		fmt.Fprintln(stderr, "wxpaybench: interrupted:", err)
		return exitInterrupted
	default:
		fmt.Fprintln(stderr, "wxpaybench:", err)
		return exitStack
	}
}
