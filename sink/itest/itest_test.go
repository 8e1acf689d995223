package itest_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/wxpayd/wxpayd/sink/itest"
)

// TestGateChild is the test that TestGate runs in a child process; it does
// nothing unless ITEST_GATE names what to ask for.
func TestGateChild(t *testing.T) {
	switch os.Getenv("ITEST_GATE") {
	case "kafka":
		t.Logf("got kafka=%q", itest.Kafka(t))
	case "optional":
		k, c := itest.Optional(t)
		t.Logf("got kafka=%q clickhouse=%q", k, c)
	}
}

func TestGate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ask  string   // ITEST_GATE
		env  []string // on top of a clean KAFKA_ADDR, CLICKHOUSE_ADDR, WXPAYD_INTEGRATION
		want []string // in the child's verbose output
	}{
		{"a developer without Kafka skips with how to start it", "kafka", nil,
			[]string{"--- SKIP", "KAFKA_ADDR is not set", "services.sh up", "services.sh env"}},
		{"make test without Kafka fails", "kafka", []string{"WXPAYD_INTEGRATION=1"},
			[]string{"--- FAIL", "KAFKA_ADDR is not set and WXPAYD_INTEGRATION=1"}},
		{"a set address is returned", "kafka", []string{"KAFKA_ADDR=127.0.0.1:1", "WXPAYD_INTEGRATION=1"},
			[]string{"--- PASS", `got kafka="127.0.0.1:1"`}},
		{"an optional service a developer lacks is empty", "optional", []string{"KAFKA_ADDR=127.0.0.1:1"},
			[]string{"--- PASS", `got kafka="127.0.0.1:1" clickhouse=""`}},
		{"make test without an optional service fails", "optional", []string{"KAFKA_ADDR=127.0.0.1:1", "WXPAYD_INTEGRATION=1"},
			[]string{"--- FAIL", "needs both"}},
		{"set optional services are returned", "optional",
			[]string{"KAFKA_ADDR=127.0.0.1:1", "CLICKHOUSE_ADDR=127.0.0.1:2", "WXPAYD_INTEGRATION=1"},
			[]string{"--- PASS", `got kafka="127.0.0.1:1" clickhouse="127.0.0.1:2"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestGateChild$", "-test.v", "-test.count=1")
			for _, kv := range os.Environ() {
				switch strings.SplitN(kv, "=", 2)[0] {
				case itest.EnvKafka, itest.EnvClickHouse, itest.EnvIntegration, "TMPDIR":
				default:
					cmd.Env = append(cmd.Env, kv)
				}
			}
			// A private TMPDIR: the child's services lock is its own.
			cmd.Env = append(cmd.Env, "ITEST_GATE="+tc.ask, "TMPDIR="+t.TempDir())
			cmd.Env = append(cmd.Env, tc.env...)
			out, _ := cmd.CombinedOutput() // the exit status is in the output's verdict
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("child output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
