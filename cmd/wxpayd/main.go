// Command wxpayd is the merchant-side WeChat Pay server: buyer login,
// flash-sale prepay, payment and refund notifications, order events.
// Configuration: environment variables or flags (docs/configuration.md).
//
// main only wires: flags and environment → settings (config.go) → newApp,
// which reads the identity and builds every component (identity.go,
// app.go) → start → serve until SIGTERM, SIGINT or a component's failure
// → shutdown, in order → exit code.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes, the same as wxpaysim's and wxpaysink's.
const (
	exitOK       = 0
	exitRuntime  = 1 // a component failed to start or failed while running
	exitUsage    = 2 // bad command line: an unknown or malformed flag, or an argument
	exitConfig   = 3 // a setting is missing or wrong, or a key or secret file cannot be used
	exitShutdown = 4 // shutdown incomplete: a step failed or passed its bound (wins over exitRuntime)
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv))
}

// run is wxpayd from its command line to its exit code.
func run(args []string, getenv func(string) string) int {
	v, err := load(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK // -h: the flag package printed the usage
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "wxpayd:", err)
		return exitUsage
	}
	log := newLogger(v["WXPAYD_LOG_LEVEL"])
	a, err := newApp(v, log)
	if err != nil {
		log.Error("start-up failed", "err", err)
		return startExit(err)
	}
	// From here SIGTERM and SIGINT are caught: one that arrives during
	// start ends serve at once, and the shutdown runs.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := a.start(); err != nil {
		log.Error("start-up failed", "err", err)
		return exitRuntime
	}
	a.serve(ctx)
	if err := a.shutdown(); err != nil {
		log.Error("shutdown incomplete", "err", err)
		return exitShutdown
	}
	log.Info("stopped")
	if a.failure() != nil {
		return exitRuntime
	}
	return exitOK
}

// startExit is the exit code of a failed start: exitConfig when a setting
// caused it, exitRuntime when a component did.
func startExit(err error) int {
	var ce configError
	if errors.As(err, &ce) {
		return exitConfig
	}
	return exitRuntime
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// configError marks a start-up failure caused by a setting or a key file:
// wxpayd exits with exitConfig. Any other start-up error is a component's
// (exitRuntime).
type configError struct{ err error }

func (e configError) Error() string { return e.err.Error() }
func (e configError) Unwrap() error { return e.err }

// cfgErr is a configError with a formatted message; %w wraps as in fmt.Errorf.
func cfgErr(format string, a ...any) error { return configError{fmt.Errorf(format, a...)} }
