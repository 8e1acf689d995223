package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestExitCodes(t *testing.T) {
	t.Setenv("WXPAYD_KAFKA_BROKERS", "")
	t.Setenv("WXPAYD_CLICKHOUSE_ADDR", "")
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		msg  string
	}{
		{"an unknown flag is a usage error", nil, []string{"--nope"}, exitUsage, "flag provided but not defined"},
		{"arguments are a usage error", nil, []string{"extra"}, exitUsage, "no arguments"},
		{"no brokers is a config error", nil, []string{"--clickhouse", "127.0.0.1:1"}, exitConfig, "Brokers is required"},
		{"no ClickHouse is a config error", nil, []string{"--brokers", "127.0.0.1:1"}, exitConfig, "Addr is required"},
		{"a bad batch size in the environment is a config error", map[string]string{"WXPAYD_SINK_BATCH_SIZE": "lots"}, nil, exitConfig, "WXPAYD_SINK_BATCH_SIZE"},
		{"a bad log level is a usage error", nil, []string{"--log-level", "loud"}, exitUsage, "log-level"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stderr bytes.Buffer
			if code := run(tc.args, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.msg) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", code, tc.code, stderr.String(), tc.msg)
			}
		})
	}
}
