package sink_test

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/sink/itest"
)

// The sink process SIGKILLed mid-batch, twice, and restarted → still
// exactly N: offsets are committed only after ClickHouse accepted a batch,
// and what was written but not committed is deduplicated on event_id.
func TestSinkKilledMidBatchStillExactlyN(t *testing.T) {
	e := newEnv(t)
	bin := buildSink(t)
	const n = 200000
	evs, enc := events("K", n)
	e.produce(enc)

	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "--log-level", "warn")
		cmd.Env = append(os.Environ(),
			"WXPAYD_KAFKA_BROKERS="+e.brokers[0], "WXPAYD_KAFKA_TOPIC="+e.topic, "WXPAYD_SINK_GROUP="+e.group,
			"WXPAYD_CLICKHOUSE_ADDR="+e.chAddr, "WXPAYD_CLICKHOUSE_DATABASE="+e.database,
			"WXPAYD_SINK_BATCH_SIZE=10000", "WXPAYD_SINK_FLUSH_INTERVAL=200ms")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
		return cmd
	}
	landed := uint64(0)
	for kill := 1; kill <= 2; kill++ {
		cmd := start()
		// Kill it once more rows than before landed, but not all.
		itest.Eventually(t, 2*time.Minute, 20*time.Millisecond, "a batch lands before the kill", func() (bool, string) {
			c, err := e.counts()
			if err != nil {
				return false, err.Error()
			}
			return c.Rows > landed, fmt.Sprintf("%+v", c)
		})
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_, _ = cmd.Process.Wait()
		c, err := e.counts()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("kill %d: ClickHouse held %+v", kill, c)
		if c.Distinct >= n {
			t.Logf("kill %d came after the last batch; the restart still has to add nothing", kill)
		}
		landed = c.Rows
	}
	cmd := start()
	got := e.waitExactly(evs, 3*time.Minute)
	t.Logf("after restart: %+v (rows include duplicates not merged yet)", got)
	// A graceful stop after catching up.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("wxpaysink after SIGTERM: %v", err)
	}
}
