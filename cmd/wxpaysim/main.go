// Command wxpaysim is a WeChat Pay and Mini Program login sandbox; see
// package github.com/wxpayd/wxpayd/bench/sim.
//
//	wxpaysim keygen --dir D [--appid wx…] [--mchid …] [--sim-addr host:port] [--sim-tls-addr host:port] [--notify-url URL] [--api v3|v2]
//	wxpaysim serve --keys-dir D [--listen 127.0.0.1:9090] [--tls-listen 127.0.0.1:9443] [flags]
//
// Every serve flag may also be given as WXPAYSIM_<FLAG> in the environment
// (upper case, dashes as underscores, e.g. WXPAYSIM_NOTIFY_SPEEDUP); a flag on
// the command line wins over the environment.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/wxpayd/wxpayd/bench/sim"
	"github.com/wxpayd/wxpayd/wxpay/openssl"
)

// Exit codes.
const (
	exitOK       = 0
	exitRuntime  = 1 // the server failed while running
	exitUsage    = 2 // bad command line
	exitConfig   = 3 // invalid configuration or keys directory
	exitShutdown = 4 // graceful shutdown did not finish in time
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "keygen":
		return keygen(args[1:], stdout, stderr)
	case "serve":
		return serve(args[1:], stderr)
	case "-h", "--help", "help":
		usage(stdout)
		return exitOK
	default:
		fmt.Fprintf(stderr, "wxpaysim: unknown command %q\n", args[0])
		usage(stderr)
		return exitUsage
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  wxpaysim keygen --dir DIR [--appid wx…] [--mchid N] [--sim-addr HOST:PORT] [--sim-tls-addr HOST:PORT] [--notify-url URL] [--api v3|v2]
  wxpaysim serve --keys-dir DIR [--listen HOST:PORT] [flags]   (flags also as WXPAYSIM_* env)
Run "wxpaysim serve -h" for the serve flags.
`)
}

func keygen(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "directory to write the identity to (required)")
	var o sim.KeygenOptions
	fs.StringVar(&o.AppID, "appid", sim.DefaultAppID, "Mini Program AppID")
	fs.StringVar(&o.MchID, "mchid", sim.DefaultMchID, "merchant id")
	fs.StringVar(&o.SimAddr, "sim-addr", sim.DefaultListen, "host:port wxpayd reaches the simulator at")
	fs.StringVar(&o.SimTLSAddr, "sim-tls-addr", sim.DefaultTLSListen, "host:port wxpayd reaches the simulator's TLS listener (APIv2 /secapi/) at")
	fs.StringVar(&o.NotifyURL, "notify-url", "", "wxpayd's notification URL, written to wxpay.env (default "+sim.DefaultNotifyURL+"; with --api v2 "+sim.DefaultV2NotifyURL+")")
	fs.StringVar(&o.API, "api", "v3", "the merchant API wxpay.env configures: v3, or v2 (APIv2 credentials only: WXPAY_API=v2, the APIv2 key, the client certificate)")
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if *dir == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "wxpaysim keygen: --dir is required and no arguments are taken")
		return exitUsage
	}
	if o.API != "v2" && o.API != "v3" {
		fmt.Fprintf(stderr, "wxpaysim keygen: --api %q: want v2 or v3\n", o.API)
		return exitUsage
	}
	id, err := sim.Keygen(*dir, o)
	if err != nil {
		fmt.Fprintln(stderr, "wxpaysim keygen:", err)
		return exitConfig
	}
	fmt.Fprintf(stdout, "wrote %s: mchid %s, appid %s, merchant serial %s, public key id %s, platform serial %s\n",
		*dir, id.MchID, id.AppID, id.MerchantSerial, id.PublicKeyID, id.PlatformSerial)
	return exitOK
}

func serve(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c sim.Config
	fs.StringVar(&c.KeysDir, "keys-dir", "", "directory written by keygen (required)")
	fs.StringVar(&c.Listen, "listen", sim.DefaultListen, "address to listen on")
	fs.StringVar(&c.TLSListen, "tls-listen", "", "address of the TLS listener for APIv2's /secapi/ (merchant client certificates required); off disables it\n"+
		"(default: keygen's --sim-tls-addr, "+sim.DefaultTLSListen+"; if that port is busy the listener stays off with a warning)")
	fs.DurationVar(&c.Latency, "latency", 0, "added to every WeChat API answer, e.g. 30ms")
	fs.StringVar(&c.SigningMode, "signing-mode", sim.DefaultSigningMode, "publickey, certificate or mixed")
	fs.Float64Var(&c.MixedPublicKeyShare, "mixed-share", sim.DefaultMixedShare,
		"mixed mode: share of notifications signed with the public key (answers follow the request's Wechatpay-Serial)")
	rate := fs.Int("rate-limit", sim.DefaultRateLimit, "prepay QPS per mchid before 429 FREQUENCY_LIMITED; 0 = off")
	fs.Float64Var(&c.NotifySpeedup, "notify-speedup", 1, "divides the notification retry schedule and refund delay")
	fs.Float64Var(&c.DupRate, "dup-rate", 0, "probability of an extra duplicate notification")
	fs.Float64Var(&c.TamperRate, "tamper-rate", 0, "probability of an extra WECHATPAY/SIGNTEST/ notification")
	fs.Float64Var(&c.StaleRate, "stale-rate", 0, "probability of an extra notification with a stale timestamp")
	fs.Float64Var(&c.DropRate, "drop-rate", 0, "probability that an API answer is lost after processing")
	fs.StringVar(&c.Faults, "faults", "",
		"API faults, comma-separated endpoint.kind=rate, e.g. all.system_error=0.05,refund.lost=0.1,prepay.slow=0.01\n"+
			"endpoints: prepay query close refund refund_query certificates login bill bill_download all\n"+
			"(APIv2's unifiedorder, orderquery, closeorder, /secapi/pay/refund and refundquery take prepay, query, close, refund and refund_query's)\n"+
			"kinds: system_error rate_limited bad_gateway slow lost; and bill_download.corrupt (a file whose digest fails)")
	fs.DurationVar(&c.SlowDelay, "slow-delay", sim.DefaultSlowDelay, "delay of a slow fault's answer")
	fs.StringVar(&c.RefundOutcomes, "refund-outcomes", sim.DefaultRefundOutcomes,
		"how refunds end, e.g. success=0.9,closed=0.05,abnormal=0.05")
	fs.IntVar(&c.MaxOrders, "max-orders", sim.DefaultMaxOrders, "orders kept in memory before 503")
	fs.IntVar(&c.MaxPending, "max-pending", sim.DefaultMaxPending, "notifications and refunds in flight before 503")
	fs.IntVar(&c.NotifyWorkers, "notify-workers", sim.DefaultNotifyWorkers, "concurrent notification deliveries")
	fs.DurationVar(&c.NotifyTimeout, "notify-timeout", sim.DefaultNotifyTimeout, "wait for the merchant's 2xx")
	fs.DurationVar(&c.RefundDelay, "refund-delay", sim.DefaultRefundDelay,
		"refund PROCESSING time before it ends SUCCESS, CLOSED or ABNORMAL (divided by --notify-speedup)")
	fs.IntVar(&c.MaxLoginCodes, "max-login-codes", sim.DefaultMaxLoginCodes, "wx.login codes remembered")
	fs.DurationVar(&c.BillReadyAfter, "bill-ready-after", sim.DefaultBillReadyAfter,
		"when a day's bills can be downloaded, after the end of the day in Beijing time; 0 = at once")
	fs.Uint64Var(&c.Seed, "seed", 0, "seed for fault injection, refund outcomes and mixed-mode notifications (0 = random)")
	backend := fs.String("rsa-backend", openssl.NameAuto, "auto, go or openssl")
	libPath := fs.String("openssl-lib", "", "libcrypto path for the openssl backend (default: libcrypto.so.3)")
	shutdown := fs.Duration("shutdown-timeout", 10*time.Second, "graceful shutdown limit")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: wxpaysim serve --keys-dir DIR [flags]; every flag may also be set as WXPAYSIM_<FLAG> (e.g. WXPAYSIM_NOTIFY_SPEEDUP)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "wxpaysim serve: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	if err := applyEnv(fs, os.LookupEnv); err != nil {
		fmt.Fprintln(stderr, "wxpaysim serve:", err)
		return exitUsage
	}
	// The specs are command-line syntax: a bad one is a usage error.
	if _, err := sim.ParseFaults(c.Faults); err != nil {
		fmt.Fprintln(stderr, "wxpaysim serve: --faults (or WXPAYSIM_FAULTS):", err)
		return exitUsage
	}
	if _, err := sim.ParseRefundOutcomes(c.RefundOutcomes); err != nil {
		fmt.Fprintln(stderr, "wxpaysim serve: --refund-outcomes (or WXPAYSIM_REFUND_OUTCOMES):", err)
		return exitUsage
	}
	// The command line's 0 means off; the Config's zero means the default.
	c.RateLimit = *rate
	if *rate == 0 {
		c.RateLimit = sim.RateLimitOff
	}
	if c.BillReadyAfter == 0 {
		c.BillReadyAfter = sim.BillReadyNow
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintln(stderr, "wxpaysim serve: --log-level:", err)
		return exitUsage
	}
	c.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	b, err := openssl.Select(*backend, *libPath)
	if err != nil {
		fmt.Fprintln(stderr, "wxpaysim serve:", err)
		return exitConfig
	}
	c.Backend = b
	if err := c.Validate(); err != nil {
		fmt.Fprintln(stderr, "wxpaysim serve:", err)
		return exitConfig
	}
	s, err := sim.New(c)
	if err != nil {
		fmt.Fprintln(stderr, "wxpaysim serve:", err)
		return exitConfig
	}
	c.Logger.Info("rsa backend", "name", b.Name(), "openssl", openssl.Version())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// Run: listen, serve until SIGINT/SIGTERM, then shut down in order: stop
	// the listener and finish open requests, stop the delivery scheduler and
	// wait for deliveries in flight, all within --shutdown-timeout.
	if err := s.Run(ctx, *shutdown); err != nil {
		fmt.Fprintln(stderr, "wxpaysim serve:", err)
		if errors.Is(err, context.DeadlineExceeded) {
			return exitShutdown
		}
		return exitRuntime
	}
	return exitOK
}

// parseExit maps a flag parsing error to an exit code: -h is not an error.
func parseExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}

// applyEnv sets every flag not given on the command line from
// WXPAYSIM_<NAME> when that variable is set.
func applyEnv(fs *flag.FlagSet, lookup func(string) (string, bool)) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		name := "WXPAYSIM_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := lookup(name); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, e)
			}
		}
	})
	return err
}
