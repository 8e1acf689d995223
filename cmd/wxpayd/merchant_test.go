package main

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/bench/rig"
)

// TestMain runs the tests; rig.Main removes the binaries they build.
func TestMain(m *testing.M) { rig.Main(m) }

// merchant is wxpaysim and one wxpayd, its merchant, on loopback: the real
// binaries of this tree.
type merchant struct {
	sim  *rig.Sim
	srv  *rig.Process // wxpayd
	base string       // wxpayd's URL
}

// startMerchant starts wxpaysim (serve: more flags) and a wxpayd for API
// api ("v3" or "v2") with env on top of rig's settings (rig.Sim.WxpaydEnv),
// and waits for wxpayd's /readyz.
func startMerchant(t *testing.T, api, admin string, serve []string, env ...string) *merchant {
	t.Helper()
	dir := t.TempDir()
	bin := rig.Build(t, "./cmd/wxpayd", "./cmd/wxpaysim")
	listen := rig.FreeAddr(t)
	m := &merchant{sim: rig.StartSim(t, bin["wxpaysim"], dir, api, listen, serve...), base: "http://" + listen}
	m.srv = rig.Start(t, rig.Cmd{Path: bin["wxpayd"], Env: m.sim.WxpaydEnv(t, dir, listen, admin, env...),
		Log: filepath.Join(dir, "wxpayd.log"), Ready: m.base + "/readyz", ReadyWithin: 15 * time.Second})
	return m
}

// crash SIGKILLs wxpayd, starts it again on the same data directory and
// waits for /readyz.
func (m *merchant) crash(t *testing.T) {
	t.Helper()
	if err := m.srv.Restart(); err != nil {
		t.Fatal(err)
	}
}
